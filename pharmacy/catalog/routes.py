from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from pharmacy.api import CSV_BODY, Blueprint, page_items, page_request, paginate, request_uow, uploaded_csv
from pharmacy.auth import requires
from pharmacy.catalog import services
from pharmacy.catalog.models import Drug, LocalCode
from pharmacy.catalog.schemas import (
    DrugQuerySchema,
    DrugSchema,
    DrugUpdateSchema,
    FormularyDrugSchema,
    FormularyEntrySchema,
    ImportResultSchema,
    LocalCodeQuerySchema,
    LocalCodeSchema,
    ResolveQuerySchema,
)
from pharmacy.errors import PreconditionRequired, ValidationFailed
from pharmacy.principal import Role

blp = Blueprint("catalog", __name__, url_prefix="/api", description="The consortium's unified drug catalog")

ANY_ROLE = (Role.ADMIN, Role.PRESCRIBER, Role.PHARMACIST, Role.PROCUREMENT)
IF_MATCH = {"in": "header", "name": "If-Match", "required": True, "schema": {"type": "string"},
            "description": "the ETag of the drug as you last read it"}
ETAG_HEADER = {"description": "the drug's version, to send back as If-Match", "schema": {"type": "string"}}


def etag(drug: Drug) -> dict[str, str]:
    return {"ETag": f'"{drug.version}"'}


def _if_match() -> int:
    raw = request.headers.get("If-Match")
    if not raw:
        raise PreconditionRequired("send If-Match with the ETag you read, so no one else's change is overwritten")
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ValidationFailed("If-Match is not an ETag of this service", {"If-Match": raw})
    return int(value)


@blp.route("/drugs")
class DrugsView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(DrugQuerySchema, location="query")
    @blp.response(200, DrugSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> list[Drug]:
        """Search the catalog (code, name, pinyin initials), best matches first"""
        page = services.search_drugs(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(Role.ADMIN)
    @blp.arguments(DrugSchema)
    @blp.response(201, DrugSchema, headers={"ETag": ETAG_HEADER})
    def post(self, data: dict[str, Any]) -> Any:
        """Add a drug to the catalog"""
        drug = services.create_drug(request_uow(), data)
        return drug, 201, etag(drug)


@blp.route("/drugs/<id:drug_id>")
class DrugView(MethodView):
    @requires(*ANY_ROLE)
    @blp.response(200, DrugSchema, headers={"ETag": ETAG_HEADER})
    def get(self, drug_id: int) -> Any:
        """One drug, with its ETag"""
        drug = services.get_drug(request_uow(), drug_id)
        return drug, 200, etag(drug)

    @requires(Role.ADMIN)
    @blp.arguments(DrugUpdateSchema(partial=True))
    @blp.response(200, DrugSchema, headers={"ETag": ETAG_HEADER})
    @blp.alt_response(412, description="the drug changed since you read it")
    @blp.alt_response(428, description="If-Match is missing")
    @blp.doc(parameters=[IF_MATCH])
    def patch(self, changes: dict[str, Any], drug_id: int) -> Any:
        """Change a drug (retire it with active=false); needs If-Match"""
        drug = services.update_drug(request_uow(), drug_id, changes, _if_match())
        return drug, 200, etag(drug)


@blp.route("/drugs/resolve")
class ResolveView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(ResolveQuerySchema, location="query")
    @blp.response(200, DrugSchema)
    def get(self, query: dict[str, Any]) -> Drug:
        """Resolve a consortium, national or local code to the catalog drug"""
        return services.resolve_code(request_uow(), query["code"], query.get("site_id"))


@blp.route("/drugs/import")
class ImportView(MethodView):
    @requires(Role.ADMIN)
    @blp.doc(requestBody=CSV_BODY)
    @blp.response(200, ImportResultSchema)
    def post(self) -> dict[str, int]:
        """Import drugs from CSV: all rows or none, every bad row reported; re-importing changes nothing"""
        return services.import_drugs_csv(request_uow(), uploaded_csv())


@blp.route("/drugs/export")
class ExportView(MethodView):
    @requires(*ANY_ROLE)
    @blp.response(200, description="the catalog as CSV, in the import's columns",
                  content_type="text/csv")
    def get(self) -> Response:
        """Export the catalog as CSV"""
        body = services.export_drugs_csv(request_uow())
        return Response(body, mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=catalog.csv"})


@blp.route("/local-codes")
class LocalCodesView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(LocalCodeQuerySchema, location="query")
    @blp.response(200, LocalCodeSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> list[LocalCode]:
        """List member systems' local codes"""
        page = services.list_local_codes(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(Role.ADMIN)
    @blp.arguments(LocalCodeSchema)
    @blp.response(201, LocalCodeSchema)
    def post(self, data: dict[str, Any]) -> LocalCode:
        """Map a site's local code to a catalog drug"""
        return services.map_local_code(request_uow(), data["site_id"], data["local_code"], data["drug_id"])


@blp.route("/sites/<id:site_id>/formulary")
class FormularyView(MethodView):
    @requires(*ANY_ROLE)
    @blp.response(200, FormularyDrugSchema(many=True))
    @paginate(blp)
    def get(self, site_id: int, pagination_parameters: Any) -> list[dict[str, Any]]:
        """The drugs a site may dispense (essential list for grassroots sites, plus extensions)"""
        page = services.site_formulary(request_uow(), site_id, page_request(pagination_parameters))
        return [{"drug": d, "extended": e} for d, e in page_items(page, pagination_parameters)]


@blp.route("/sites/<id:site_id>/formulary/<id:drug_id>")
class FormularyEntryView(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(FormularyEntrySchema)
    @blp.response(200, FormularyEntrySchema)
    def put(self, data: dict[str, Any], site_id: int, drug_id: int) -> Any:
        """Extend a site's formulary with a drug"""
        return services.extend_formulary(request_uow(), site_id, drug_id, data["note"])

    @requires(Role.ADMIN)
    @blp.response(204)
    def delete(self, site_id: int, drug_id: int) -> None:
        """Remove a drug from a site's extended formulary"""
        services.remove_formulary_extension(request_uow(), site_id, drug_id)
