"""Domain words the pages show by their code (statuses, kinds, reasons, actions), listed so that the
translation catalogs carry them. ``N_`` only marks a string for extraction."""

from __future__ import annotations


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
PLAN_STATUSES = (N_("optimal"), N_("feasible_time_limit"))  # a solved plan's
ACTIONS = (N_("accept"), N_("reject"), N_("return"), N_("prepare"), N_("dispense"), N_("hand-over"), N_("ship"),
           N_("receive"))
