from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pharmacy.api import Blueprint, page_items, page_request, paginate, request_uow
from pharmacy.auth import current_principal, requires
from pharmacy.consortium import services
from pharmacy.consortium.models import Consortium, Site
from pharmacy.consortium.schemas import (
    ConsortiumSchema,
    ConsortiumUpdateSchema,
    SiteQuerySchema,
    SiteSchema,
    SiteUpdateSchema,
)
from pharmacy.principal import Role

blp = Blueprint("consortium", __name__, url_prefix="/api", description="The consortium and its member sites")

ANY_ROLE = (Role.ADMIN, Role.PRESCRIBER, Role.PHARMACIST, Role.PROCUREMENT)


@blp.route("/consortium")
class ConsortiumView(MethodView):
    @requires(*ANY_ROLE)
    @blp.response(200, ConsortiumSchema)
    def get(self) -> Consortium:
        """The caller's consortium"""
        principal = current_principal()
        return services.get_consortium(request_uow(), principal.consortium_id)  # type: ignore[arg-type]

    @requires(Role.ADMIN)
    @blp.arguments(ConsortiumUpdateSchema)
    @blp.response(200, ConsortiumSchema)
    def patch(self, changes: dict[str, Any]) -> Consortium:
        """Rename the consortium or change its kind"""
        principal = current_principal()
        return services.update_consortium(request_uow(), principal.consortium_id, changes)  # type: ignore[arg-type]


@blp.route("/sites")
class SitesView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(SiteQuerySchema, location="query")
    @blp.response(200, SiteSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> list[Site]:
        """List the consortium's sites"""
        page = services.list_sites(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(Role.ADMIN)
    @blp.arguments(SiteSchema)
    @blp.response(201, SiteSchema)
    def post(self, data: dict[str, Any]) -> Site:
        """Add a member site"""
        principal = current_principal()
        return services.create_site(request_uow(), principal.consortium_id, data)  # type: ignore[arg-type]


@blp.route("/sites/<id:site_id>")
class SiteView(MethodView):
    @requires(*ANY_ROLE)
    @blp.response(200, SiteSchema)
    def get(self, site_id: int) -> Site:
        """One site"""
        return services.get_site(request_uow(), site_id)

    @requires(Role.ADMIN)
    @blp.arguments(SiteUpdateSchema)
    @blp.response(200, SiteSchema)
    def patch(self, changes: dict[str, Any], site_id: int) -> Site:
        """Change a site, including its place in the tree"""
        return services.update_site(request_uow(), site_id, changes)
