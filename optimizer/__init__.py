"""Pooled purchasing and expiry-aware redistribution for a consortium, planned as mixed-integer programs.

Pure: frozen dataclasses in (:mod:`optimizer.problem`), a :class:`~optimizer.plan.Plan` out. It imports
neither the service nor a database.
"""

from optimizer.evaluate import Violation, check_decisions
from optimizer.model import build_model
from optimizer.plan import Costs, Plan, PlanningError
from optimizer.planner import baseline_costs, evaluate, solve
from optimizer.problem import Arc, Decisions, Demand, DrugPolicy, Lot, Offer, Problem, Tier

__all__ = ["Arc", "Costs", "Decisions", "Demand", "DrugPolicy", "Lot", "Offer", "Plan", "PlanningError", "Problem",
           "Tier", "Violation", "baseline_costs", "build_model", "check_decisions", "evaluate", "solve"]
