"""A structured dosage (FHIR R4 ``Dosage``: route, dose, timing) said in Chinese for the pharmacist and the label.

Plain Python: no Flask, no session. Many prescribing systems send a dosage only as data, without ``text``; the
pharmacist still needs it in words: ``口服，每次 6 mg，每日 1 次``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

# SNOMED CT routes (R4's example binding) and HL7 v3 RouteOfAdministration codes.
ROUTES = {
    "26643006": "口服", "PO": "口服", "37839007": "舌下含服", "SL": "舌下含服",
    "47625008": "静脉注射", "IV": "静脉注射", "IVINJ": "静脉注射", "IVINFUS": "静脉滴注",
    "78421000": "肌内注射", "IM": "肌内注射", "IMINJ": "肌内注射",
    "34206005": "皮下注射", "SC": "皮下注射", "SQ": "皮下注射", "SCINJ": "皮下注射",
    "37161004": "直肠给药", "PR": "直肠给药", "6064005": "外用", "TOPICAL": "外用",
    "46713006": "鼻腔给药", "NASAL": "鼻腔给药", "54485002": "滴眼", "OPHTHALMIC": "滴眼",
    "447694001": "吸入", "IPINHL": "吸入", "45890007": "经皮给药", "TRNSDERM": "经皮给药",
}
UNITS = {"tab": "片", "tablet": "片", "{tbl}": "片", "{tablet}": "片", "cap": "粒", "capsule": "粒",
         "{capsule}": "粒", "drop": "滴", "{drop}": "滴", "puff": "揿", "{puff}": "揿", "sachet": "袋",
         "patch": "贴"}
PERIOD_UNITS = {"s": "秒", "min": "分钟", "h": "小时", "d": "日", "wk": "周", "mo": "月", "a": "年"}
# HL7 v3 GTSAbbreviation timing codes (Timing.code).
TIMING_CODES = {"QD": "每日 1 次", "BID": "每日 2 次", "TID": "每日 3 次", "QID": "每日 4 次", "AM": "每日早上 1 次",
                "PM": "每日晚上 1 次", "QOD": "隔日 1 次", "Q4H": "每 4 小时 1 次", "Q6H": "每 6 小时 1 次",
                "Q8H": "每 8 小时 1 次", "WK": "每周 1 次", "MO": "每月 1 次"}
# Timing.repeat.when (v3 TimingEvent / FHIR event-timing).
WHEN = {"AC": "饭前", "ACM": "早餐前", "ACD": "午餐前", "ACV": "晚餐前", "PC": "饭后", "PCM": "早餐后",
        "PCD": "午餐后", "PCV": "晚餐后", "C": "随餐", "HS": "睡前", "WAKE": "起床后", "MORN": "早上",
        "AFT": "下午", "EVE": "晚上", "NIGHT": "夜间"}


def _number(value: Any) -> str:
    number = Decimal(str(value))
    return str(number.to_integral_value()) if number == number.to_integral_value() else str(number.normalize())


def _concept(concept: Mapping[str, Any] | None, words: Mapping[str, str]) -> str:
    if not concept:
        return ""
    for coding in concept.get("coding") or []:
        said = words.get(str(coding.get("code", "")).upper()) or words.get(str(coding.get("code", "")))
        if said:
            return said
    displays = [c.get("display") for c in concept.get("coding") or [] if c.get("display")]
    return str(concept.get("text") or (displays[0] if displays else ""))


def _quantity(quantity: Mapping[str, Any]) -> str:
    unit = str(quantity.get("unit") or quantity.get("code") or "")
    unit = UNITS.get(unit.lower(), unit)
    amount = _number(quantity["value"]) if quantity.get("value") is not None else ""
    return f"{amount} {unit}".strip() if unit and unit.isascii() else f"{amount}{unit}"


def _dose(dose_and_rate: Sequence[Mapping[str, Any]]) -> str:
    for entry in dose_and_rate:
        if entry.get("doseQuantity"):
            return "每次 " + _quantity(entry["doseQuantity"])
        if entry.get("doseRange"):
            low, high = entry["doseRange"].get("low") or {}, entry["doseRange"].get("high") or {}
            if low.get("value") is not None and high.get("value") is not None:
                return f"每次 {_number(low['value'])}-{_quantity(high)}"
    return ""


def _frequency(timing: Mapping[str, Any]) -> str:
    repeat = timing.get("repeat") or {}
    said = ""
    if repeat.get("periodUnit") in PERIOD_UNITS:
        unit = PERIOD_UNITS[repeat["periodUnit"]]
        period = Decimal(str(repeat.get("period") or 1))
        times = repeat.get("frequency") or 1
        if repeat.get("frequencyMax"):
            times = f"{times}-{repeat['frequencyMax']}"
        every = f"每{unit}" if period == 1 else f"每 {_number(period)} {unit}"
        said = f"{every} {times} 次"
    elif timing.get("code"):
        said = _concept(timing["code"], TIMING_CODES)
    when = "、".join(WHEN[w] for w in repeat.get("when") or [] if w in WHEN)
    return "，".join(part for part in (said, when) if part)


def dosage_text_zh(dosage: Mapping[str, Any]) -> str:
    """One FHIR ``Dosage`` in Chinese words: its route, dose and frequency (``text``, when sent, wins)."""
    if dosage.get("text"):
        return str(dosage["text"])
    parts = [_concept(dosage.get("route"), ROUTES), _dose(dosage.get("doseAndRate") or []),
             _frequency(dosage.get("timing") or {})]
    if dosage.get("asNeededBoolean"):
        parts.append("必要时使用")
    elif dosage.get("asNeededCodeableConcept"):
        parts.append("必要时使用（" + _concept(dosage["asNeededCodeableConcept"], {}) + "）")
    parts.extend(str(i.get("text")) for i in dosage.get("additionalInstruction") or [] if i.get("text"))
    if dosage.get("patientInstruction"):
        parts.append(str(dosage["patientInstruction"]))
    return "，".join(part for part in parts if part)


def dosage_instructions_zh(dosages: Sequence[Mapping[str, Any]]) -> str:
    """A MedicationRequest's dosage instructions in Chinese, in their sequence."""
    ordered = sorted(dosages, key=lambda d: d.get("sequence") or 0)
    return "；".join(text for text in (dosage_text_zh(d) for d in ordered) if text)
