"""Why a plan line is as it is, in the page's language: the optimizer gives each reason as a code and its figures
(``optimizer.plan.Reason``), naming sites, lots and offers by their ids; the pages say it with the names people
know (a site's name, a lot's number, an offer's supplier) and money in yuan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask_babel import gettext

from pharmacy.procurement.queries import REASON_SITE_FACTS, ReasonNames
from pharmacy.web.words import N_

# One template per reason code of optimizer.plan.REASON_TEXTS; "tier_reached" and "site_can_use" have two forms.
REASON_WORDS = {
    "tier_reached_pooled": N_("the tier from %(min_packs)s packs at %(price)s a pack, reached by the consortium's "
                              "pooled %(packs)s packs; %(landed)s a unit delivered to %(site)s"),
    "tier_reached_own": N_("the tier from %(min_packs)s packs at %(price)s a pack, reached by this site's own "
                           "%(packs)s packs; %(landed)s a unit delivered to %(site)s"),
    "other_offers": N_("other offers from %(cheapest)s a unit at their base tier"),
    "packs_moved_on": N_("units of packs from %(offer)s delivered to %(origin)s, moved on: cheaper than buying for "
                         "%(site)s (%(unit_cost)s a unit to move)"),
    "on_its_way": N_("lot %(lot)s of %(lot_site)s on its way through %(origin)s (%(unit_cost)s a unit to move)"),
    "arrives_in": N_("arrives in %(days)s days"),
    "expires_before_use": N_("lot %(lot)s expires in %(days)s days; %(lot_site)s can use only %(can_use)s of its "
                             "%(quantity)s before then"),
    "no_demand_cheaper": N_("%(lot_site)s has no demand for it; cheaper than buying for %(site)s (%(unit_cost)s a "
                            "unit to move)"),
    "lent": N_("lent: cheaper than buying for %(site)s (%(unit_cost)s a unit to move)"),
    "no_offer_delivers": N_("no offer delivers to %(site)s, and no stock that may move there is left to use in time"),
    "needed_before_fastest": N_("%(units)s units needed in the first %(days)s days, before the fastest offer "
                                "delivers"),
    "short_within_budget": N_("%(units)s units left short within the budget"),
    "offers_at_capacity": N_("every offer that delivers here is at its capacity"),
    "offers_too_late": N_("the offers with capacity left deliver too late to meet them"),
    "one_more_pack": N_("one more pack from %(offer)s would meet %(units)s units (lead time %(lead_days)s days) for "
                        "%(landed)s delivered; the %(short)s units short cost %(penalty)s each"),
    "expires_in": N_("expires in %(days)s days"),
    "moved_not_used": N_("moved to %(site)s, which does not use it all in time"),
    "no_demand": N_("%(site)s has no demand for it"),
    "site_can_use": N_("%(site)s can use %(can)s of its %(quantity)s before then"),
    "site_can_use_uses": N_("%(site)s can use %(can)s of its %(quantity)s before then and uses %(used)s"),
    "moves_to": N_("%(units)s move to %(site)s"),
    "may_move_nowhere": N_("it may move to no site that can use it in time"),
    "no_plan_wastes_less": N_("no plan could waste less of this drug's stock"),
    "neighbours_could_use_more": N_("the sites it may move to could use more of it in time, and meet that need "
                                    "otherwise (their own stock, other lots or whole packs)"),
    "already_expired": N_("already expired"),
    "expires_before_arrives": N_("expires in %(days)s days, before it arrives"),
}
MONEY = ("price", "landed", "unit_cost", "cheapest", "penalty")
UNITS = ("units", "can_use", "can", "quantity", "used", "short", "packs", "min_packs", "days", "lead_days")


def _fact(name: str, value: Any, names: ReasonNames) -> Any:
    if name in REASON_SITE_FACTS:
        return names.sites.get(value, value)
    if name == "lot":
        return names.lots.get(value, value)
    if name == "offer":
        return names.offers.get(value, value)
    if name in MONEY:
        # A unit's price below ten fen keeps its third decimal, so that two such prices compare.
        return f"¥{value:,.2f}" if name not in ("landed", "cheapest") or value >= 0.1 else f"¥{value:,.3f}"
    if name in UNITS and isinstance(value, int | float):
        return f"{value:,.0f}"
    return value


def say_reason(reason: Mapping[str, Any], names: ReasonNames) -> str:
    """One reason in the page's language (an unknown code, from a newer optimizer, by its code)."""
    code, facts = reason["code"], dict(reason.get("facts") or {})
    if code == "moves_to":
        return gettext(", ").join(gettext(REASON_WORDS[code], site=names.sites.get(site, site), units=f"{units:,.0f}")
                                 for site, units in facts["moves"])
    if code == "tier_reached":
        code = "tier_reached_pooled" if facts.get("pooled") else "tier_reached_own"
    elif code == "site_can_use" and facts.get("used") is not None:
        code = "site_can_use_uses"
    template = REASON_WORDS.get(code)
    if template is None:
        return code
    return gettext(template, **{name: _fact(name, value, names) for name, value in facts.items()
                                if name not in ("pooled", "moves")})


def say_reasons(reasons: Iterable[Mapping[str, Any]], names: ReasonNames, why: str = "") -> str:
    """A line's reasons in the page's language, one after the other; a line stored before its reasons were kept
    says its English ``why``."""
    said = [say_reason(reason, names) for reason in reasons]
    return gettext("; ").join(said) if said else why
