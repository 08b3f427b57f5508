"""Words of the officer's and administrator's desks that the pages show by their code or pass on from a library,
listed so that the translation catalog carries them (``N_`` only marks a string for extraction)."""

from __future__ import annotations

from pharmacy.csv_import import FIELD_MESSAGES
from pharmacy.web.words import N_

# What marshmallow says of a field or a CSV cell (pharmacy.csv_import.FIELD_MESSAGES), said in the page's language.
FIELD_WORDS = (N_("Missing data for required field."), N_("Not a valid integer."),
               N_("Not a valid integer (a whole number, not a fraction)."), N_("Not a valid number."),
               N_("Not a valid date."), N_("Not a valid string."), N_("Not a valid boolean."), N_("Unknown field."),
               N_("Field may not be null."), N_("Special numeric values (nan or infinity) are not permitted."))
assert set(FIELD_WORDS) == FIELD_MESSAGES
# Where an offer's refusal was met (pharmacy.procurement.services).
PLACES = (N_("offer"),)
# Site kinds, as the administration pages name them.
SITE_KINDS = (N_("lead_hospital"), N_("hospital"), N_("community_health_centre"), N_("township_health_centre"),
              N_("village_clinic"), N_("distribution_centre"))
# What the audit trail's filter offers: the kinds of object it records (some are among pharmacy.web.words.THINGS).
AUDITED = (N_("LocalCode"), N_("FormularyEntry"), N_("Consortium"), N_("User"), N_("ApiKey"))
# A drug's classes, as the catalog's form offers them.
DRUG_CLASSES = (N_("A"), N_("B"), N_("none"), N_("psychotropic_2"), N_("psychotropic_1"), N_("narcotic"), N_("toxic"),
                N_("radioactive"), N_("cold_chain"), N_("frozen"), N_("light_protected"))
