//! Closed vocabularies of the domain. Each value has the number the v1 contract gives it
//! and a stable text code that storage uses, so the database stays readable.

/// Declares an enum whose values carry a wire number and a storage code.
macro_rules! code_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $num:literal => $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant = $num,)+ }

        impl $name {
            /// Every value, in wire-number order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value with this wire number, if any (0, "unspecified", is none).
            pub fn from_number(n: i32) -> Option<Self> {
                match n { $($num => Some($name::$variant),)+ _ => None }
            }

            /// The wire number.
            pub fn number(self) -> i32 {
                self as i32
            }

            /// The storage code, e.g. `ADMINISTRATIVE_PENALTY`.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The value for a storage code.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let code = String::deserialize(d)?;
                $name::from_code(&code).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} code {code}", stringify!($name)))
                })
            }
        }
    };
}
pub(crate) use code_enum;

code_enum! {
    /// The kind of department an agency is; it decides which records the agency may file.
    pub enum AgencyKind {
        MarketRegulation = 1 => "MARKET_REGULATION",
        Court = 2 => "COURT",
        Tax = 3 => "TAX",
        SocialSecurity = 4 => "SOCIAL_SECURITY",
        Education = 5 => "EDUCATION",
        VettingOffice = 6 => "VETTING_OFFICE",
    }
}

code_enum! {
    /// What a record says about its subject.
    pub enum RecordKind {
        AdministrativeLicense = 1 => "ADMINISTRATIVE_LICENSE",
        AdministrativePenalty = 2 => "ADMINISTRATIVE_PENALTY",
        AdministrativeCoerciveMeasure = 3 => "ADMINISTRATIVE_COERCIVE_MEASURE",
        SpotCheckResult = 4 => "SPOT_CHECK_RESULT",
        AbnormalOperationsListing = 5 => "ABNORMAL_OPERATIONS_LISTING",
        SeriousDishonestyListing = 6 => "SERIOUS_DISHONESTY_LISTING",
        AnnualReportFiling = 7 => "ANNUAL_REPORT_FILING",
        Honor = 8 => "HONOR",
        DishonestJudgmentDebtor = 9 => "DISHONEST_JUDGMENT_DEBTOR",
        ConsumptionRestriction = 10 => "CONSUMPTION_RESTRICTION",
        MajorTaxViolation = 11 => "MAJOR_TAX_VIOLATION",
        TaxCreditRating = 12 => "TAX_CREDIT_RATING",
        SocialSecuritySeriousDishonesty = 13 => "SOCIAL_SECURITY_SERIOUS_DISHONESTY",
        SocialSecurityArrears = 14 => "SOCIAL_SECURITY_ARREARS",
        EducationViolation = 15 => "EDUCATION_VIOLATION",
    }
}

impl RecordKind {
    /// The only kind of agency that may file records of this kind.
    pub fn filed_by(self) -> AgencyKind {
        use RecordKind::*;
        match self {
            AdministrativeLicense
            | AdministrativePenalty
            | AdministrativeCoerciveMeasure
            | SpotCheckResult
            | AbnormalOperationsListing
            | SeriousDishonestyListing
            | AnnualReportFiling
            | Honor => AgencyKind::MarketRegulation,
            DishonestJudgmentDebtor | ConsumptionRestriction => AgencyKind::Court,
            MajorTaxViolation | TaxCreditRating => AgencyKind::Tax,
            SocialSecuritySeriousDishonesty | SocialSecurityArrears => AgencyKind::SocialSecurity,
            EducationViolation => AgencyKind::Education,
        }
    }

    /// Whether a record of this kind may be about a natural person rather than an
    /// enterprise (court lists and social-security and education dishonesty name people).
    pub fn may_concern_person(self) -> bool {
        use RecordKind::*;
        matches!(
            self,
            DishonestJudgmentDebtor
                | ConsumptionRestriction
                | MajorTaxViolation
                | SocialSecuritySeriousDishonesty
                | EducationViolation
        )
    }
}

code_enum! {
    /// Severity tier, as SAMR Order 107 names them.
    pub enum Tier {
        Minor = 1 => "MINOR",
        Moderate = 2 => "MODERATE",
        Serious = 3 => "SERIOUS",
    }
}

code_enum! {
    /// The 22 regulatory domains the district supervises.
    pub enum RegulatoryDomain {
        BusinessRegistration = 1 => "BUSINESS_REGISTRATION",
        FoodProduction = 2 => "FOOD_PRODUCTION",
        FoodDistribution = 3 => "FOOD_DISTRIBUTION",
        Drugs = 4 => "DRUGS",
        MedicalDevices = 5 => "MEDICAL_DEVICES",
        Cosmetics = 6 => "COSMETICS",
        Elevators = 7 => "ELEVATORS",
        PressureEquipment = 8 => "PRESSURE_EQUIPMENT",
        Pricing = 9 => "PRICING",
        MotorVehicleInspection = 10 => "MOTOR_VEHICLE_INSPECTION",
        ProductQuality = 11 => "PRODUCT_QUALITY",
        Metrology = 12 => "METROLOGY",
        Certification = 13 => "CERTIFICATION",
        Advertising = 14 => "ADVERTISING",
        FairCompetition = 15 => "FAIR_COMPETITION",
        ConsumerProtection = 16 => "CONSUMER_PROTECTION",
        IntellectualProperty = 17 => "INTELLECTUAL_PROPERTY",
        Education = 18 => "EDUCATION",
        SocialSecurity = 19 => "SOCIAL_SECURITY",
        Construction = 20 => "CONSTRUCTION",
        Taxation = 21 => "TAXATION",
        JudicialEnforcement = 22 => "JUDICIAL_ENFORCEMENT",
    }
}

code_enum! {
    /// Where a record stands. `Expired` is derived from the publicity window at read time.
    pub enum RecordStatus {
        Active = 1 => "ACTIVE",
        Repaired = 2 => "REPAIRED",
        Expired = 3 => "EXPIRED",
        Withdrawn = 4 => "WITHDRAWN",
    }
}

code_enum! {
    /// A measure imposed by an administrative penalty decision.
    pub enum PenaltyMeasure {
        Warning = 1 => "WARNING",
        PublicCriticism = 2 => "PUBLIC_CRITICISM",
        Fine = 3 => "FINE",
        Confiscation = 4 => "CONFISCATION",
        QualificationDowngraded = 5 => "QUALIFICATION_DOWNGRADED",
        LicenseRevoked = 6 => "LICENSE_REVOKED",
        BusinessRestricted = 7 => "BUSINESS_RESTRICTED",
        ProductionSuspended = 8 => "PRODUCTION_SUSPENDED",
        Closure = 9 => "CLOSURE",
        PracticeBan = 10 => "PRACTICE_BAN",
        Other = 11 => "OTHER",
    }
}

code_enum! {
    /// The four causes of an abnormal-operations listing (经营异常名录).
    pub enum AbnormalCause {
        AnnualReportNotFiled = 1 => "ANNUAL_REPORT_NOT_FILED",
        OrderedInformationNotPublished = 2 => "ORDERED_INFORMATION_NOT_PUBLISHED",
        FalseInformation = 3 => "FALSE_INFORMATION",
        UnreachableAddress = 4 => "UNREACHABLE_ADDRESS",
    }
}

code_enum! {
    /// Why an enterprise is on the serious-dishonesty list (严重违法失信名单).
    pub enum SeriousListingCause {
        AbnormalListThreeYears = 1 => "ABNORMAL_LIST_THREE_YEARS",
        SeriousViolation = 2 => "SERIOUS_VIOLATION",
        Other = 3 => "OTHER",
    }
}

code_enum! {
    /// The outcome of a "double random" spot check.
    pub enum SpotCheckOutcome {
        Passed = 1 => "PASSED",
        ProblemsFound = 2 => "PROBLEMS_FOUND",
        NotFoundAtAddress = 3 => "NOT_FOUND_AT_ADDRESS",
    }
}

code_enum! {
    /// The legal form of a market entity.
    pub enum EnterpriseKind {
        LimitedLiabilityCompany = 1 => "LIMITED_LIABILITY_COMPANY",
        JointStockCompany = 2 => "JOINT_STOCK_COMPANY",
        SoleProprietorship = 3 => "SOLE_PROPRIETORSHIP",
        Partnership = 4 => "PARTNERSHIP",
        IndividualBusiness = 5 => "INDIVIDUAL_BUSINESS",
        FarmersCooperative = 6 => "FARMERS_COOPERATIVE",
        Branch = 7 => "BRANCH",
        Other = 8 => "OTHER",
    }
}

code_enum! {
    /// Registration status of a market entity.
    pub enum EnterpriseStatus {
        Operating = 1 => "OPERATING",
        Suspended = 2 => "SUSPENDED",
        Deregistered = 3 => "DEREGISTERED",
        LicenseRevoked = 4 => "LICENSE_REVOKED",
    }
}

code_enum! {
    /// A person's role in an enterprise.
    pub enum RoleKind {
        LegalRepresentative = 1 => "LEGAL_REPRESENTATIVE",
        Shareholder = 2 => "SHAREHOLDER",
        Executive = 3 => "EXECUTIVE",
    }
}

code_enum! {
    /// What happened to a submitted record.
    pub enum SubmitOutcome {
        Created = 1 => "CREATED",
        Revised = 2 => "REVISED",
        Unchanged = 3 => "UNCHANGED",
        Stale = 4 => "STALE",
    }
}

code_enum! {
    /// Why an enterprise was regraded.
    pub enum GradeChangeCause {
        RecordSubmitted = 1 => "RECORD_SUBMITTED",
        RecordWithdrawn = 2 => "RECORD_WITHDRAWN",
        PublicityEnded = 3 => "PUBLICITY_ENDED",
        RelatedPartyChanged = 4 => "RELATED_PARTY_CHANGED",
        ModelChanged = 5 => "MODEL_CHANGED",
        RecordRepaired = 6 => "RECORD_REPAIRED",
        RegistryChanged = 7 => "REGISTRY_CHANGED",
    }
}

code_enum! {
    /// Why a caller looks credit data up; declared with grade look-ups and cross-checks,
    /// kept in the audit log, and limited per agency kind by configuration.
    pub enum Purpose {
        DailySupervision = 1 => "DAILY_SUPERVISION",
        AdministrativeLicensing = 2 => "ADMINISTRATIVE_LICENSING",
        PublicProcurement = 3 => "PUBLIC_PROCUREMENT",
        JudicialEnforcement = 4 => "JUDICIAL_ENFORCEMENT",
        TaxAdministration = 5 => "TAX_ADMINISTRATION",
        SocialSecurityAdministration = 6 => "SOCIAL_SECURITY_ADMINISTRATION",
        EducationAdministration = 7 => "EDUCATION_ADMINISTRATION",
        CandidateVetting = 8 => "CANDIDATE_VETTING",
        SpotCheckPlanning = 9 => "SPOT_CHECK_PLANNING",
        CreditRepair = 10 => "CREDIT_REPAIR",
    }
}

code_enum! {
    /// Why candidates are cross-checked; the vetting policy may judge findings
    /// differently per purpose.
    pub enum VettingPurpose {
        PartyMemberDevelopment = 1 => "PARTY_MEMBER_DEVELOPMENT",
        VillageCommitteeCandidate = 2 => "VILLAGE_COMMITTEE_CANDIDATE",
        NonPublicEconomyRepresentative = 3 => "NON_PUBLIC_ECONOMY_REPRESENTATIVE",
        PublicHonorNomination = 4 => "PUBLIC_HONOR_NOMINATION",
        Other = 5 => "OTHER",
    }
}

code_enum! {
    /// The outcome of a cross-check for one candidate, from best to worst; INVALID is
    /// for a candidate whose own input could not be checked.
    pub enum Verdict {
        Clear = 1 => "CLEAR",
        Review = 2 => "REVIEW",
        Adverse = 3 => "ADVERSE",
        Invalid = 4 => "INVALID",
    }
}
