"""Domain words the pages show by their code (statuses, kinds, reasons, actions), listed so that the
translation catalogs carry them (``N_`` only marks a string for extraction); and the services' messages said in
the page's language."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext

from pharmacy.errors import DomainError, Message


def N_(text: str) -> str:  # the conventional marker name of gettext tools
    return text


STATUSES = (N_("routed"), N_("awaiting_stock"), N_("accepted"), N_("prepared"), N_("partially_dispensed"),
            N_("dispensed"), N_("scheduled"), N_("completed"), N_("rejected"), N_("cancelled"), N_("expired"),
            N_("queued"), N_("running"), N_("succeeded"), N_("failed"), N_("approved"), N_("open"),
            N_("requested"), N_("shipped"), N_("partially_received"), N_("received"))
KINDS = (N_("ordinary"), N_("emergency"), N_("long"), N_("redistribution"), N_("near_expiry"),
         N_("shortage_cover"))
REASONS = (N_("dose"), N_("interaction"), N_("contraindication"), N_("allergy"), N_("incomplete"), N_("duplicate"),
           N_("policy"), N_("out_of_stock"), N_("closed"), N_("staff"), N_("cold_chain_unavailable"), N_("other"))
# A solved plan's statuses, and a drug's within it.
PLAN_STATUSES = (N_("optimal"), N_("feasible_time_limit"), N_("gap_not_proved"), N_("node_limit"))
ACTIONS = (N_("accept"), N_("reject"), N_("return"), N_("prepare"), N_("dispense"), N_("hand-over"), N_("ship"),
           N_("receive"), N_("cancel"))
# A prescription's actions as its refusals name them: by code, and in words.
PRESCRIPTION_ACTIONS = (N_("stock_arrived"), N_("dispense_part"), N_("dispense_all"), N_("hand_over"),
                        N_("hand_over_last"), N_("issue_due"), N_("issue_awaits_stock"), N_("expire"),
                        N_("stock arrived"), N_("dispense part"), N_("dispense all"), N_("hand over"),
                        N_("hand over last"), N_("issue due"), N_("issue awaits stock"))
REASON_KINDS = (N_("rejection"),)  # whose reason codes a refusal lists ("return" is an action too)
# What a refusal says was not found, or may not be acted for.
THINGS = (N_("API key"), N_("drug"), N_("lot"), N_("movement"), N_("offer"), N_("plan run"), N_("prescription"),
          N_("purchase order"), N_("reservation"), N_("site"), N_("supplier"), N_("transfer order"),
          N_("upper site"), N_("user"), N_("webhook"), N_("Drug"), N_("Lot"), N_("Site"), N_("Prescription"),
          N_("PlanRun"), N_("PurchaseOrder"), N_("TransferOrder"), N_("Supplier"), N_("Offer"))
# Why units shipped did not arrive whole (a transit loss).
LOSS_REASONS = (N_("damaged"), N_("missing"), N_("wrong_item"))
# What stock is held or moved for (a prescription is among THINGS).
CAUSES = (N_("manual"), N_("transfer"), N_("purchase_order"), N_("count"))
ROLES = (N_("pharmacist"), N_("prescriber"), N_("procurement"), N_("admin"), N_("system"))
# A patient's sex as FHIR says it, and the controlled classes of drugs.
GENDERS = (N_("male"), N_("female"), N_("other"), N_("unknown"))
CONTROLLED_CLASSES = (N_("narcotic"), N_("psychotropic_1"), N_("psychotropic_2"), N_("toxic"), N_("radioactive"))
# The units drugs are dispensed in.
UNITS = (N_("tablet"), N_("capsule"), N_("pen"), N_("injection"), N_("sachet"), N_("bottle"), N_("unit"))
# What happened to a prescription, as its events name it (the actions are among ACTIONS and PRESCRIPTION_ACTIONS).
EVENTS = (N_("received"), N_("returned"), N_("hand_over_last"))
# Movements of stock and why they were made.
MOVEMENT_KINDS = (N_("receipt"), N_("dispense"), N_("transfer_out"), N_("transfer_in"), N_("count_adjustment"),
                  N_("expiry_write_off"), N_("reversal"), N_("transit_loss"))
MOVEMENT_REASONS = (N_("purchase"), N_("donation"), N_("opening_balance"), N_("central_allocation"),
                    N_("prescription"), N_("count_difference"), N_("recalled"), N_("patient_return"),
                    N_("return_to_supplier"), N_("entry_error"))
# What an alert is about.
ALERT_KINDS = (N_("low_stock"), N_("planned_shortage"), N_("planned_waste"))
MOST_REASONS_SHOWN = 10


def say(message: Any) -> str:
    """A service's message in the page's language: a :class:`Message` by its template, translated, and filled with
    its facts said the same way (a list of them joined); any other message as it is."""
    if isinstance(message, list | tuple):
        return gettext(", ").join(say(part) for part in message)
    if not isinstance(message, Message):
        return str(message)
    if not message.facts:
        return gettext(message.template)
    return gettext(message.template, **{name: say(fact) if isinstance(fact, Message | list | tuple) else fact
                                        for name, fact in message.facts.items()})


def refusal(error: DomainError) -> str:
    """What a page flashes when a service refuses: its message, and each itemised reason, in the page's language."""
    reasons = [item["reason"] for item in error.errors if isinstance(item, dict) and item.get("reason")] \
        if isinstance(error.errors, list) else []
    return " · ".join([say(error.message), *(say(reason) for reason in reasons[:MOST_REASONS_SHOWN])])
