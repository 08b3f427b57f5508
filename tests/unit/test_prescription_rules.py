from datetime import date

import pytest

from pharmacy.errors import InvalidTransition
from pharmacy.prescriptions.domain import (
    DISPENSING_STARTED,
    TRANSITIONS,
    Action,
    Candidate,
    DrugFacts,
    ItemRequest,
    Kind,
    Limits,
    PassedOver,
    Returned,
    Status,
    StatusReason,
    StockRequest,
    check_policy,
    has_dispensed,
    next_status,
    passed_over_nomination,
    rank_pharmacies,
)

TODAY = date(2026, 11, 23)

# --- the state machine ---------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "action"), sorted(TRANSITIONS, key=str))
def test_every_allowed_transition_leads_where_the_table_says(state, action):
    assert next_status(state, action) is TRANSITIONS[(state, action)]


def test_a_first_issue_comes_to_a_status_of_dispensing_started_only_by_a_dispense():
    dispensing = {Action.DISPENSE_PART, Action.DISPENSE_ALL}
    reached, frontier = {Status.ROUTED}, [Status.ROUTED]
    while frontier:  # every status a first issue reaches without a dispense
        state = frontier.pop()
        for (source, action), target in TRANSITIONS.items():
            if source is state and action not in dispensing and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert not reached & DISPENSING_STARTED
    assert {TRANSITIONS[key] for key in TRANSITIONS if key[1] in dispensing} <= DISPENSING_STARTED


def test_only_a_prescription_that_has_dispensed_is_asked_for_its_dispenses():
    assert not has_dispensed(Status.PREPARED, 0)
    assert has_dispensed(Status.DISPENSED, 0)
    assert has_dispensed(Status.ACCEPTED, 1)  # a later issue: the first was dispensed


REFUSED = [(s, a) for s in Status for a in Action if (s, a) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "action"), REFUSED)
def test_every_other_transition_is_refused_naming_the_current_state(state, action):
    with pytest.raises(InvalidTransition) as raised:
        next_status(state, action)
    assert state.value in raised.value.message and raised.value.status == 409


def test_cancel_after_dispensing_started_says_why():
    with pytest.raises(InvalidTransition, match="dispensing has started"):
        next_status(Status.PARTIALLY_DISPENSED, Action.CANCEL)


def test_final_states_say_they_are_final():
    with pytest.raises(InvalidTransition, match="final state"):
        next_status(Status.COMPLETED, Action.ACCEPT)


# --- policy ----------------------------------------------------------------------------------------

PLAIN = DrugFacts("AML5", True, "none", "none", "C08CA01")


def item(drug: DrugFacts | None = PLAIN, supply: int = 7, repeats: int = 0, interval: int | None = None,
         code: str = "AML5") -> ItemRequest:
    return ItemRequest(drug, code, 28, supply, repeats, interval)


DEFAULT_LIMITS = Limits()


def problems(kind: Kind, *items: ItemRequest, issued: date = TODAY, valid: date = TODAY,
             limits: Limits = DEFAULT_LIMITS):
    return check_policy(kind, issued, valid, TODAY, list(items), limits)


def reasons(found) -> str:
    return " | ".join(p["reason"] for p in found)


def test_an_ordinary_week_is_accepted():
    assert problems(Kind.ORDINARY, item()) == []


def test_validity_longer_than_three_days_is_refused():
    assert "at most 3 days" in reasons(problems(Kind.ORDINARY, item(), valid=date(2026, 11, 27)))
    assert problems(Kind.ORDINARY, item(), valid=date(2026, 11, 26)) == []


def test_ordinary_supply_over_seven_days_and_emergency_over_three_are_refused():
    assert "at most 7 days" in reasons(problems(Kind.ORDINARY, item(supply=8)))
    assert "at most 3 days" in reasons(problems(Kind.EMERGENCY, item(supply=4)))


def test_limits_are_configurable():
    assert problems(Kind.ORDINARY, item(supply=14), limits=Limits(ordinary_supply_days=14)) == []


def test_long_prescription_up_to_twelve_weeks_in_installments():
    assert problems(Kind.LONG, item(supply=28, repeats=2, interval=28)) == []
    assert "at most 84 days" in reasons(problems(Kind.LONG, item(supply=28, repeats=3)))


@pytest.mark.parametrize(("facts", "why"), [
    (DrugFacts("MOR", True, "narcotic", "none", None), "narcotic"),
    (DrugFacts("DZP", True, "psychotropic_2", "none", None), "psychotropic_2"),
    (DrugFacts("INS", True, "none", "cold_chain", None), "cold_chain"),
    (DrugFacts("AMX", True, "none", "none", "J01CA04"), "antimicrobial"),
])
def test_long_prescriptions_are_refused_for_excluded_drugs(facts, why):
    assert why in reasons(problems(Kind.LONG, item(facts, supply=28, repeats=1)))


def test_controlled_classes_follow_their_own_limits():
    narcotic = DrugFacts("MOR", True, "narcotic", "none", None)
    assert "at most 3 days" in reasons(problems(Kind.ORDINARY, item(narcotic, supply=5)))
    toxic = DrugFacts("TOX", True, "toxic", "none", None)
    assert "at most 2 days" in reasons(problems(Kind.ORDINARY, item(toxic, supply=3)))


def test_unknown_and_retired_drugs_are_refused_and_every_problem_is_listed():
    retired = DrugFacts("OLD", False, "none", "none", None)
    found = problems(Kind.ORDINARY, item(None, code="NOPE"), item(retired, supply=9), valid=date(2026, 12, 30))
    assert {p["field"] for p in found} == {"items[0].drug", "items[1].drug", "items[1].supply_days", "valid_until"}


def test_repeats_belong_to_long_prescriptions_only():
    assert "only long prescriptions" in reasons(problems(Kind.ORDINARY, item(repeats=1)))


# --- routing ---------------------------------------------------------------------------------------

HOME = (30.26, 120.14)


def site(site_id: int, *, fill: bool = True, district: str = "D1", at=(30.26, 120.14), queue: int = 0) -> Candidate:
    return Candidate(site_id, f"S{site_id}", district, at, queue, fill, () if fill else ("AML5",))


def route(*candidates: Candidate, nominated: int | None = None):
    return rank_pharmacies(candidates, nominated_site_id=nominated, patient_district="D1", patient_location=HOME)


def chosen(*candidates: Candidate, nominated: int | None = None) -> int:
    return route(*candidates, nominated=nominated)[0].candidate.site_id


def test_a_nominated_pharmacy_that_can_fill_wins_even_far_away():
    assert chosen(site(1), site(2, district="D9", at=(31.0, 121.0), queue=50), nominated=2) == 2


def test_a_nominated_pharmacy_that_cannot_fill_does_not_win():
    assert chosen(site(1), site(2, fill=False), nominated=2) == 1


def test_a_nomination_passed_over_says_why():
    ranked = route(site(1), site(2, fill=False), nominated=2)
    passed = passed_over_nomination(ranked, 1, 2, "S2")
    assert passed == PassedOver("S2", "cannot_fill", ("AML5",))
    assert passed.text() == "the nominated pharmacy S2 cannot fill AML5 from usable stock"
    assert passed_over_nomination(route(site(1)), 1, 2, "S2") == PassedOver("S2", "may_not_dispense")
    # It could fill, but another prescription took the stock before it was held: said so, not "cannot fill".
    assert passed_over_nomination(route(site(1), site(2), nominated=2), 1, 2, "S2").reason == "stock_taken"
    assert passed_over_nomination(ranked, 2, 2, "S2") is None and passed_over_nomination(ranked, 1, None, None) is None


def test_a_passed_over_nomination_comes_first_in_the_status_reason_and_its_facts():
    reason = StatusReason("routed", pharmacy="S1", why="S1: can fill every item from usable stock",
                          passed_over=PassedOver("S2", "cannot_fill", ("AML5",)))
    assert reason.text() == ("the nominated pharmacy S2 cannot fill AML5 from usable stock; routed to S1: can fill "
                             "every item from usable stock")
    assert reason.facts()["passed_over"] == {"pharmacy": "S2", "reason": "cannot_fill", "short_items": ["AML5"]}


def test_filling_every_item_beats_district_distance_and_queue():
    assert chosen(site(1, fill=False), site(2, district="D9", at=(31.0, 121.0), queue=9)) == 2


def test_the_patients_district_beats_distance():
    assert chosen(site(1, district="D9", at=HOME), site(2, at=(30.30, 120.20))) == 2


def test_distance_beats_the_queue():
    assert chosen(site(1, at=(30.30, 120.20)), site(2, at=(30.261, 120.141), queue=30)) == 2


def test_the_shortest_queue_breaks_a_tie():
    assert chosen(site(1, queue=5), site(2, queue=1)) == 2


def test_the_reason_says_why():
    reason = route(site(1, fill=False), site(2), nominated=2)[0].reason
    assert reason.startswith("S2: nominated by the prescriber; can fill every item")
    assert "in the patient's district (D1)" in reason and "0.0 km" in reason and "0 open prescriptions" in reason
    assert "cannot fill AML5" in route(site(1, fill=False))[0].reason


# --- why a prescription has its status ---------------------------------------------------------------

@pytest.mark.parametrize(("reason", "said"), [
    (StatusReason("routed", pharmacy="A-C1", why="A-C1: nominated by the prescriber"),
     "routed to A-C1: nominated by the prescriber"),
    (StatusReason("awaiting_stock", Returned("A-C1", "out_of_stock", "the fridge failed"), "A-C2",
                  requests=(StockRequest("AML5", 190, "A-LEAD"), StockRequest("MET5", 20))),
     "returned by A-C1 (out_of_stock: the fridge failed); no pharmacy can fill every item; waiting at A-C2: "
     "transfer of 190 AML5 requested from A-LEAD; the consortium has no surplus of MET5: shortage of 20 recorded "
     "for procurement"),
    (StatusReason("routed", Returned("A-C1", "staff"), "A-C2", "A-C2: can fill every item"),
     "returned by A-C1 (staff); routed to A-C2: can fill every item"),
    (StatusReason("issue_awaits_stock", requests=(StockRequest("AML5", 28, "A-C2"),)),
     "transfer of 28 AML5 requested from A-C2"),
    (StatusReason("accept"), "accepted on review"),
    (StatusReason("reject", reason_code="dose"), "dose"),
    (StatusReason("reject", reason_code="dose", note="twice the usual"), "dose: twice the usual"),
    (StatusReason("stock_arrived"), "stock arrived and is reserved"),
    (StatusReason("dispense_part"), "partly dispensed"),
    (StatusReason("hand_over", issue=1, issues_total=3), "issue 1 of 3 handed over"),
    (StatusReason("hand_over_last", issue=3, issues_total=3), "handed over"),
    (StatusReason("issue_due", issue=2, issues_total=3, on=date(2026, 12, 21)),
     "issue 2 of 3 due on 2026-12-21; stock reserved"),
    (StatusReason("cancel"), "cancelled by the prescriber"),
    (StatusReason("cancel", note="admitted to hospital"), "admitted to hospital"),
    (StatusReason("expire", on=date(2026, 11, 25)), "not collected by 2026-11-25"),
])
def test_a_status_reason_says_what_happened_in_english(reason, said):
    assert reason.text() == said


@pytest.mark.parametrize("action", sorted(set(Action) - {Action.RETURN}))  # a return routes again, and says so
def test_every_action_that_changes_a_status_has_its_words(action):
    assert StatusReason(action.value, requests=(StockRequest("AML5", 1),), reason_code="dose", issue=1, issues_total=2,
                        on=TODAY).text()


def test_a_status_reasons_facts_hold_only_what_applies():
    assert StatusReason("accept").facts() == {"what": "accept"}
    waiting = StatusReason("awaiting_stock", Returned("A-C1", "closed"), "A-C2", requests=(StockRequest("AML5", 5),))
    assert waiting.facts() == {"what": "awaiting_stock", "pharmacy": "A-C2",
                               "returned": {"site": "A-C1", "reason_code": "closed", "note": ""},
                               "requests": [{"drug": "AML5", "quantity": 5, "donor": None}]}
    assert StatusReason("expire", on=TODAY).facts() == {"what": "expire", "on": "2026-11-23"}
