"""A partner system in another language: Python grpcio with no .proto files.

It discovers the services by server reflection, checks health, submits a record and
reads it back, building every message from the reflected descriptors. Exits non-zero
with a message on the first thing that does not work.

usage: reflection_client.py HOST:PORT TOKEN USCC
"""

import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def main():
    target, token, uscc = sys.argv[1:4]
    channel = grpc.insecure_channel(target)

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = sorted(s.name for r in replies for s in r.list_services_response.service)
    print("services:", " ".join(services))
    for wanted in ("credithub.v1.RecordService", "credithub.v1.RegistryService", "grpc.health.v1.Health"):
        if wanted not in services:
            fail(f"{wanted} not listed by reflection")

    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="readiness")).status
    if status != health_pb2.HealthCheckResponse.SERVING:
        fail(f"readiness is {status}, not SERVING")
    print("health: SERVING")

    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("credithub.v1.RecordService")
    metadata = [("authorization", f"Bearer {token}")]

    def call(method, **fields):
        m = service.FindMethodByName(method)
        request_class = message_factory.GetMessageClass(m.input_type)
        response_class = message_factory.GetMessageClass(m.output_type)
        rpc = channel.unary_unary(
            f"/{service.full_name}/{method}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        return rpc(request_class(**fields), metadata=metadata)

    record_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("credithub.v1.Record"))
    record = record_class(
        kind=pool.FindEnumTypeByName("credithub.v1.RecordKind").values_by_name["RECORD_KIND_ADMINISTRATIVE_PENALTY"].number,
        tier=pool.FindEnumTypeByName("credithub.v1.Tier").values_by_name["TIER_MODERATE"].number,
        domain=pool.FindEnumTypeByName("credithub.v1.RegulatoryDomain").values_by_name["REGULATORY_DOMAIN_PRICING"].number,
        decision_date="2026-06-01",
        document_number="威开市监罚〔2026〕88号",
        deciding_authority="威海经济技术开发区市场监督管理局",
        penalty_measures=[pool.FindEnumTypeByName("credithub.v1.PenaltyMeasure").values_by_name["PENALTY_MEASURE_FINE"].number],
        fine_amount_fen=300_000,
    )
    record.subject.enterprise = f"enterprises/{uscc}"
    record.provenance.source_record_id = "PY-1"
    record.provenance.revision = 1

    submitted = call("BatchSubmitRecords", request_id="python-1", records=[record])
    name = submitted.records[0].name
    print("submitted:", name)

    listed = call("ListRecords", subject_enterprise=f"enterprises/{uscc}")
    if [r.name for r in listed.records] != [name]:
        fail(f"ListRecords returned {[r.name for r in listed.records]}, expected [{name}]")
    got = call("GetRecord", name=name).record
    if got.document_number != "威开市监罚〔2026〕88号":
        fail("GetRecord returned another document number")

    try:
        call("GetRecord", name="records/bad name")
        fail("a malformed name was accepted")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
            fail(f"malformed name gave {e.code()}, expected INVALID_ARGUMENT")
    print("read back:", got.name, got.publicity_end_date)
    print("OK")


if __name__ == "__main__":
    main()
