//! The reference server of the grade benchmark: the same `GradeService` contract served
//! from an in-memory map with no authentication and no database, built with the same
//! release profile. `bench/grade_lookup.sh` drives it and credit-hub with one h2load
//! command and reports credit-hub's throughput as a ratio to this.
//!
//! usage: hello_grades LISTEN_ADDR USCC_FILE

use std::collections::HashMap;
use std::sync::Arc;

use credit_hub::proto::v1::{
    self as pb, grade_service_server::GradeService, grade_service_server::GradeServiceServer,
};
use tonic::{Request, Response, Status};

struct Hello {
    grades: Arc<HashMap<String, pb::CreditGrade>>,
}

#[tonic::async_trait]
impl GradeService for Hello {
    async fn get_credit_grade(
        &self,
        req: Request<pb::GetCreditGradeRequest>,
    ) -> Result<Response<pb::GetCreditGradeResponse>, Status> {
        match self.grades.get(&req.get_ref().name) {
            Some(g) => Ok(Response::new(pb::GetCreditGradeResponse {
                grade: Some(g.clone()),
            })),
            None => Err(Status::not_found("unknown enterprise")),
        }
    }

    async fn batch_get_credit_grades(
        &self,
        req: Request<pb::BatchGetCreditGradesRequest>,
    ) -> Result<Response<pb::BatchGetCreditGradesResponse>, Status> {
        let grades = req
            .get_ref()
            .names
            .iter()
            .map(|n| {
                self.grades
                    .get(n)
                    .cloned()
                    .ok_or_else(|| Status::not_found("unknown enterprise"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::BatchGetCreditGradesResponse { grades }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, file) = (
        args.get(1).ok_or("LISTEN_ADDR")?,
        args.get(2).ok_or("USCC_FILE")?,
    );
    let grades = std::fs::read_to_string(file)?
        .lines()
        .map(|u| {
            let name = format!("enterprises/{u}");
            let grade = pb::CreditGrade {
                name: format!("{name}/creditGrades/general"),
                enterprise: name.clone(),
                grade: pb::Grade::A as i32,
                score: 100,
                model: "general".into(),
                model_version: "2026.1".into(),
                ..Default::default()
            };
            (name, grade)
        })
        .collect();
    tonic::transport::Server::builder()
        .add_service(GradeServiceServer::new(Hello {
            grades: Arc::new(grades),
        }))
        .serve(listen.parse()?)
        .await?;
    Ok(())
}
