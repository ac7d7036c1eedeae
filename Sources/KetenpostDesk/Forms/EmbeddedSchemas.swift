// swift-format-ignore-file
// Generated from docs/schemas by SchemaFormTests (KETENPOST_UPDATE_DOCS=1 swift test --filter SchemaFormTests); do not edit.

/// The payload JSON Schemas, compiled in so that the desk needs no files beside its binary.
enum EmbeddedSchemas {
    static let files: [String: String] = [
        "common": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:common",
  "title": "Ketenpost: parts shared by the payload schemas",
  "description": "Text rules, identifiers, persons, contacts and places as the relay and the model check them (Sources/KetenpostModel). Rules JSON Schema cannot state (the BSN eleven-test, dates not in the future) are named in descriptions and checked by the model.",
  "$defs": {
    "shortText": {
      "type": "string",
      "description": "One line of 1 to 200 characters, not only whitespace, without control characters.",
      "minLength": 1,
      "maxLength": 200,
      "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    },
    "freeText": {
      "type": "string",
      "description": "Up to 10,000 characters, not only whitespace; line breaks and tabs allowed, other control characters not.",
      "minLength": 1,
      "maxLength": 10000,
      "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
    },
    "date": {
      "type": "string",
      "description": "A calendar date YYYY-MM-DD (years 1900-9999).",
      "pattern": "^(19|[2-9][0-9])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
      "format": "date"
    },
    "pastDate": {
      "$ref": "urn:ketenpost:schema:common#/$defs/date",
      "description": "A calendar date YYYY-MM-DD, not in the future (Dutch local time)."
    },
    "dateTime": {
      "type": "string",
      "description": "An RFC 3339 time with a time zone, such as 2026-11-29T17:00:00Z.",
      "format": "date-time",
      "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
    },
    "partnerId": {
      "type": "string",
      "description": "A partner id: lowercase letters, digits and hyphens, 2 to 63 characters, not starting with a hyphen.",
      "pattern": "^[a-z0-9][a-z0-9-]{1,62}$"
    },
    "cbsMunicipality": {
      "type": "string",
      "description": "A CBS municipality code: GM followed by 4 digits.",
      "pattern": "^GM[0-9]{4}$"
    },
    "legalBasis": {
      "type": "string",
      "title": "Legal basis",
      "description": "Why sharing these data is lawful.",
      "enum": ["consent", "legal-task", "vital-interest"]
    },
    "urgency": { "type": "string", "title": "Urgency", "enum": ["normal", "urgent", "acute"] },
    "exploitationForm": { "type": "string", "title": "Form of exploitation", "enum": ["sexual", "labour", "criminal", "unknown"] },
    "partnerRole": {
      "type": "string",
      "enum": ["municipality", "care-coordinator", "shelter", "care-provider", "police", "tax-office", "registry"]
    },
    "person": {
      "type": "object",
      "title": "Person",
      "description": "Who the message is about; share only what is needed. At least one of alias, givenName, familyName.",
      "additionalProperties": false,
      "properties": {
        "alias": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText", "title": "Alias" },
        "givenName": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText", "title": "Given name" },
        "familyName": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText", "title": "Family name" },
        "dateOfBirth": { "$ref": "urn:ketenpost:schema:common#/$defs/pastDate", "title": "Date of birth" },
        "gender": { "type": "string", "title": "Gender", "enum": ["female", "male", "non-binary", "unknown"] },
        "nationality": {
          "type": "string",
          "title": "Nationality",
          "description": "ISO 3166-1 alpha-3 in capitals, such as NLD.",
          "pattern": "^[A-Z]{3}$"
        },
        "bsn": {
          "type": "string",
          "title": "BSN",
          "description": "Burgerservicenummer: 9 digits that pass the eleven-test.",
          "pattern": "^[0-9]{9}$"
        }
      },
      "anyOf": [{ "required": ["alias"] }, { "required": ["givenName"] }, { "required": ["familyName"] }]
    },
    "contact": {
      "type": "object",
      "title": "Contact",
      "description": "Who to call back: the caseworker, with a phone number or an e-mail address.",
      "additionalProperties": false,
      "required": ["organisation", "name"],
      "properties": {
        "organisation": { "$ref": "urn:ketenpost:schema:common#/$defs/partnerId", "title": "Organisation (partner id)" },
        "name": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText", "title": "Name" },
        "phone": {
          "type": "string",
          "title": "Phone",
          "description": "6 to 20 digits, spaces, hyphens or brackets, optionally after a +.",
          "pattern": "^\\+?[0-9 ()-]{6,20}$"
        },
        "email": {
          "type": "string",
          "title": "E-mail",
          "description": "One @ with text on both sides, no spaces, at most 254 characters.",
          "maxLength": 254,
          "pattern": "^[^@\\s\\u0000-\\u001f\\u007f-\\u009f]+@[^@\\s\\u0000-\\u001f\\u007f-\\u009f]+$"
        }
      },
      "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }]
    },
    "place": {
      "type": "object",
      "title": "Place",
      "description": "Where it was observed: a description (a car park, a field, a web site), optionally the municipality.",
      "additionalProperties": false,
      "required": ["description"],
      "properties": {
        "description": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText", "title": "Description" },
        "municipality": { "$ref": "urn:ketenpost:schema:common#/$defs/cbsMunicipality", "title": "Municipality (CBS code)" }
      }
    },
    "shortList": {
      "type": "array",
      "items": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText" }
    }
  }
}
"""#,
        "enforcement-signal": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:enforcement-signal",
  "title": "Enforcement signal",
  "description": "Information about suspected perpetrators for the criminal, fiscal or administrative route. It carries no data about the victim and no health data: no such field exists, and the relay refuses any key that suggests one.",
  "type": "object",
  "additionalProperties": false,
  "required": ["schema", "subjects", "suspicion", "requestedRoute", "legalBasis"],
  "properties": {
    "schema": { "const": "ketenpost/enforcement-signal/v1" },
    "subjects": {
      "type": "array", "title": "Subjects", "minItems": 1, "maxItems": 50,
      "items": {
        "type": "object", "additionalProperties": false, "required": ["kind", "name"],
        "properties": {
          "kind": { "type": "string", "title": "Kind", "enum": ["person", "business"] },
          "name": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText", "title": "Name" },
          "kvkNumber": { "type": "string", "title": "KvK number", "description": "Only for a business: 8 digits.", "pattern": "^[0-9]{8}$" },
          "address": { "$ref": "urn:ketenpost:schema:common#/$defs/shortText", "title": "Address" },
          "dateOfBirth": { "$ref": "urn:ketenpost:schema:common#/$defs/pastDate", "title": "Date of birth", "description": "Only for a person." }
        },
        "allOf": [
          { "if": { "properties": { "kind": { "const": "person" } } }, "then": { "not": { "required": ["kvkNumber"] } } },
          { "if": { "properties": { "kind": { "const": "business" } } }, "then": { "not": { "required": ["dateOfBirth"] } } }
        ]
      }
    },
    "suspicion": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText", "title": "Suspicion" },
    "observations": {
      "type": "array", "title": "Observations", "maxItems": 100,
      "items": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText" }
    },
    "requestedRoute": { "type": "string", "title": "Requested route", "enum": ["criminal", "fiscal", "administrative"] },
    "legalBasis": { "$ref": "urn:ketenpost:schema:common#/$defs/legalBasis" }
  }
}
"""#,
        "intake-notice": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:intake-notice",
  "title": "Intake notice",
  "description": "Asks a shelter to take someone in; the shelter answers with an intake-response.",
  "type": "object",
  "additionalProperties": false,
  "required": ["schema", "person", "languages", "urgency", "requestedArrival", "referrer", "legalBasis"],
  "properties": {
    "schema": { "const": "ketenpost/intake-notice/v1" },
    "person": { "$ref": "urn:ketenpost:schema:common#/$defs/person" },
    "languages": {
      "type": "array", "title": "Languages", "description": "ISO 639-1 codes of two lowercase letters, such as nl.",
      "minItems": 1, "maxItems": 10, "uniqueItems": true,
      "items": { "type": "string", "pattern": "^[a-z]{2}$" }
    },
    "dependants": {
      "type": "array", "title": "Dependants", "description": "Children and partners who arrive with the person and need a place too.",
      "maxItems": 20,
      "items": {
        "type": "object", "additionalProperties": false, "required": ["relation"],
        "properties": {
          "relation": { "type": "string", "title": "Relation", "enum": ["child", "partner", "other"] },
          "ageYears": { "type": "integer", "title": "Age in years", "minimum": 0, "maximum": 120 }
        }
      }
    },
    "urgency": { "$ref": "urn:ketenpost:schema:common#/$defs/urgency" },
    "requestedArrival": { "$ref": "urn:ketenpost:schema:common#/$defs/dateTime", "title": "Requested arrival" },
    "safetyRisks": { "$ref": "urn:ketenpost:schema:common#/$defs/shortList", "title": "Safety risks", "maxItems": 50 },
    "medicalNeeds": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText", "title": "Medical needs" },
    "referrer": { "$ref": "urn:ketenpost:schema:common#/$defs/contact", "title": "Referrer" },
    "legalBasis": { "$ref": "urn:ketenpost:schema:common#/$defs/legalBasis" }
  }
}
"""#,
        "intake-response": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:intake-response",
  "title": "Intake response",
  "description": "The shelter's answer to an intake notice (the routing header's correlationId names the notice).",
  "type": "object",
  "additionalProperties": false,
  "required": ["schema", "outcome", "legalBasis"],
  "properties": {
    "schema": { "const": "ketenpost/intake-response/v1" },
    "outcome": { "type": "string", "title": "Outcome", "enum": ["accepted", "declined", "waitlisted"] },
    "reason": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText", "title": "Reason", "description": "Required when declined or waitlisted." },
    "arrivalInstructions": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText", "title": "Arrival instructions", "description": "Required when accepted: where and when to bring the person." },
    "legalBasis": { "$ref": "urn:ketenpost:schema:common#/$defs/legalBasis" }
  },
  "if": { "properties": { "outcome": { "const": "accepted" } }, "required": ["outcome"] },
  "then": { "required": ["arrivalInstructions"] },
  "else": { "required": ["reason"] }
}
"""#,
        "referral-response": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:referral-response",
  "title": "Referral response",
  "description": "A care provider's or shelter's answer to a referral (the routing header's correlationId names the referral).",
  "type": "object",
  "additionalProperties": false,
  "required": ["schema", "outcome", "contact", "legalBasis"],
  "properties": {
    "schema": { "const": "ketenpost/referral-response/v1" },
    "outcome": { "type": "string", "title": "Outcome", "enum": ["accepted", "declined", "completed"] },
    "declineReason": {
      "type": "string", "title": "Reason for declining", "description": "Required when declined, and only then.",
      "enum": ["no-capacity", "not-suitable", "outside-region", "person-declined", "other"]
    },
    "explanation": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText", "title": "Explanation", "description": "Required when the reason is other." },
    "startDate": { "$ref": "urn:ketenpost:schema:common#/$defs/date", "title": "Start date", "description": "Only when accepted: the day care starts." },
    "contact": { "$ref": "urn:ketenpost:schema:common#/$defs/contact", "title": "Contact at the answering organisation" },
    "legalBasis": { "$ref": "urn:ketenpost:schema:common#/$defs/legalBasis" }
  },
  "allOf": [
    {
      "if": { "properties": { "outcome": { "const": "declined" } }, "required": ["outcome"] },
      "then": { "required": ["declineReason"] },
      "else": { "not": { "required": ["declineReason"] } }
    },
    {
      "if": { "properties": { "declineReason": { "const": "other" } }, "required": ["declineReason"] },
      "then": { "required": ["explanation"] }
    },
    {
      "if": { "properties": { "outcome": { "not": { "const": "accepted" } } }, "required": ["outcome"] },
      "then": { "not": { "required": ["startDate"] } }
    }
  ]
}
"""#,
        "referral": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:referral",
  "title": "Referral",
  "description": "Hands a person over from the care coordinator (or municipality) to a shelter or care provider.",
  "type": "object",
  "additionalProperties": false,
  "required": ["schema", "person", "needs", "legalBasis", "caseReference", "contact"],
  "properties": {
    "schema": { "const": "ketenpost/referral/v1" },
    "person": { "$ref": "urn:ketenpost:schema:common#/$defs/person" },
    "needs": {
      "type": "array", "title": "Needs", "minItems": 1, "maxItems": 6, "uniqueItems": true,
      "items": { "type": "string", "enum": ["housing", "medical", "legal", "psychosocial", "income", "language"] }
    },
    "legalBasis": { "$ref": "urn:ketenpost:schema:common#/$defs/legalBasis" },
    "caseReference": {
      "type": "string", "title": "Case reference", "description": "The sender's case number: 1 to 64 letters, digits or . _ / -",
      "pattern": "^[A-Za-z0-9._/-]{1,64}$"
    },
    "contact": { "$ref": "urn:ketenpost:schema:common#/$defs/contact" },
    "notes": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText", "title": "Notes" }
  }
}
"""#,
        "registration": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:registration",
  "title": "Registration",
  "description": "Pseudonymous national registration of a victim, so that the extent of trafficking becomes visible without names: no person fields exist in this schema.",
  "type": "object",
  "additionalProperties": false,
  "required": ["schema", "exploitationForm", "year", "municipality", "referralSource", "pseudonym", "legalBasis"],
  "properties": {
    "schema": { "const": "ketenpost/registration/v1" },
    "exploitationForm": { "$ref": "urn:ketenpost:schema:common#/$defs/exploitationForm" },
    "year": { "type": "integer", "title": "Year", "description": "2000 up to the current year.", "minimum": 2000 },
    "municipality": { "$ref": "urn:ketenpost:schema:common#/$defs/cbsMunicipality", "title": "Municipality (CBS code)" },
    "referralSource": { "$ref": "urn:ketenpost:schema:common#/$defs/partnerRole", "title": "Referral source" },
    "pseudonym": {
      "type": "string", "title": "Pseudonym", "description": "8 to 64 letters, digits or hyphens; stable per victim so that the registry counts people, not messages.",
      "pattern": "^[A-Za-z0-9-]{8,64}$"
    },
    "legalBasis": { "$ref": "urn:ketenpost:schema:common#/$defs/legalBasis" }
  }
}
"""#,
        "signal": #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:ketenpost:schema:signal",
  "title": "Signal",
  "description": "A front-line observation of possible trafficking, sent to the care coordinator.",
  "type": "object",
  "additionalProperties": false,
  "required": ["schema", "observedOn", "place", "exploitationForms", "indicators", "urgency", "reporter", "consent", "legalBasis"],
  "properties": {
    "schema": { "const": "ketenpost/signal/v1" },
    "observedOn": { "$ref": "urn:ketenpost:schema:common#/$defs/pastDate", "title": "Observed on" },
    "place": { "$ref": "urn:ketenpost:schema:common#/$defs/place" },
    "exploitationForms": {
      "type": "array", "title": "Forms of exploitation", "minItems": 1, "maxItems": 4, "uniqueItems": true,
      "items": { "$ref": "urn:ketenpost:schema:common#/$defs/exploitationForm" }
    },
    "indicators": {
      "$ref": "urn:ketenpost:schema:common#/$defs/shortList", "title": "Indicators", "description": "What was seen or heard: 1 to 50 short items.",
      "minItems": 1, "maxItems": 50
    },
    "urgency": { "$ref": "urn:ketenpost:schema:common#/$defs/urgency" },
    "person": { "$ref": "urn:ketenpost:schema:common#/$defs/person", "description": "Optional: a signal may be about someone whose name is unknown." },
    "reporter": { "$ref": "urn:ketenpost:schema:common#/$defs/contact", "title": "Reporter" },
    "consent": { "type": "string", "title": "Consent", "enum": ["given", "refused", "not-asked", "not-possible"] },
    "legalBasis": { "$ref": "urn:ketenpost:schema:common#/$defs/legalBasis" },
    "notes": { "$ref": "urn:ketenpost:schema:common#/$defs/freeText", "title": "Notes" }
  },
  "if": { "properties": { "legalBasis": { "const": "consent" } }, "required": ["legalBasis"] },
  "then": { "properties": { "consent": { "const": "given" } }, "description": "The legal basis can only be consent when consent is given." }
}
"""#,
    ]
}
