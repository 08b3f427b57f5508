"""Every domain event handler, imported in one place so that the unit of work finds them (see
:mod:`pharmacy.events`): the app imports this at start, as it imports the models."""

from pharmacy.prescriptions import handlers as prescriptions
from pharmacy.procurement import handlers as procurement

__all__ = ["prescriptions", "procurement"]
