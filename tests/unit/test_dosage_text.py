"""A structured FHIR dosage is said in Chinese for the pharmacist when the prescriber's system sends no text."""

from __future__ import annotations

from pharmacy.prescriptions.dosage import dosage_instructions_zh, dosage_text_zh

ORAL = {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral Route"}]}


def dose(value, unit, code=None):
    return [{"doseQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                              "code": code or unit}}]


def test_route_dose_and_daily_frequency_are_said_in_order():
    dosage = {"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}, "route": ORAL,
              "doseAndRate": dose(6, "mg")}
    assert dosage_text_zh(dosage) == "口服，每次 6 mg，每日 1 次"


def test_tablets_twice_a_day_after_meals():
    dosage = {"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d", "when": ["PC"]}},
              "route": {"coding": [{"code": "PO"}]}, "doseAndRate": dose(1, "TAB")}
    assert dosage_text_zh(dosage) == "口服，每次 1片，每日 2 次，饭后"


def test_every_eight_hours_as_needed():
    dosage = {"timing": {"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}}, "route": ORAL,
              "doseAndRate": dose(0.5, "g"), "asNeededBoolean": True}
    assert dosage_text_zh(dosage) == "口服，每次 0.5 g，每 8 小时 1 次，必要时使用"


def test_a_timing_code_and_a_dose_range():
    dosage = {"timing": {"code": {"coding": [{"code": "TID"}]}},
              "doseAndRate": [{"doseRange": {"low": {"value": 1}, "high": {"value": 2, "unit": "capsule"}}}]}
    assert dosage_text_zh(dosage) == "每次 1-2粒，每日 3 次"


def test_an_unknown_route_is_said_by_its_display():
    dosage = {"route": {"coding": [{"code": "999", "display": "Intravesical"}]}, "doseAndRate": dose(10, "mL")}
    assert dosage_text_zh(dosage) == "Intravesical，每次 10 mL"


def test_text_sent_by_the_prescriber_wins_and_instructions_keep_their_sequence():
    first = {"sequence": 2, "route": ORAL, "doseAndRate": dose(5, "mg")}
    second = {"sequence": 1, "text": "晨起空腹"}
    assert dosage_instructions_zh([first, second]) == "晨起空腹；口服，每次 5 mg"
