from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pharmacy.accounts import services
from pharmacy.accounts.models import ApiKey, User
from pharmacy.accounts.schemas import ApiKeySchema, NewApiKeySchema, NewUserSchema, UserSchema, UserUpdateSchema
from pharmacy.api import Blueprint, page_items, page_request, paginate, request_uow
from pharmacy.auth import current_principal, requires
from pharmacy.principal import Role

blp = Blueprint("accounts", __name__, url_prefix="/api", description="API keys and user accounts")


@blp.route("/api-keys")
class ApiKeysView(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, ApiKeySchema(many=True))
    @paginate(blp)
    def get(self, pagination_parameters: Any) -> list[ApiKey]:
        """List the consortium's API keys (never the keys themselves)"""
        return page_items(services.list_api_keys(request_uow(), page_request(pagination_parameters)),
                          pagination_parameters)

    @requires(Role.ADMIN)
    @blp.arguments(ApiKeySchema)
    @blp.response(201, NewApiKeySchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Issue an API key for a system; the key is shown in this response only"""
        principal = current_principal()
        key, plain = services.create_api_key(request_uow(), principal.consortium_id,  # type: ignore[arg-type]
                                             data["name"], Role(data["role"]), data.get("site_id"))
        fields = ("id", "name", "role", "site_id", "key_prefix", "active", "created_at")
        return {**{name: getattr(key, name) for name in fields}, "key": plain}


@blp.route("/api-keys/<id:key_id>/revoke")
class ApiKeyRevokeView(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, ApiKeySchema)
    def post(self, key_id: int) -> ApiKey:
        """Revoke an API key"""
        return services.revoke_api_key(request_uow(), key_id)


@blp.route("/users")
class UsersView(MethodView):
    @requires(Role.ADMIN)
    @blp.response(200, UserSchema(many=True))
    @paginate(blp)
    def get(self, pagination_parameters: Any) -> list[User]:
        """List the consortium's user accounts"""
        return page_items(services.list_users(request_uow(), page_request(pagination_parameters)),
                          pagination_parameters)

    @requires(Role.ADMIN)
    @blp.arguments(NewUserSchema)
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> User:
        """Create a user account"""
        principal = current_principal()
        return services.create_user(request_uow(), principal.consortium_id, data["username"],  # type: ignore[arg-type]
                                    data["password"], Role(data["role"]), data.get("site_id"),
                                    data.get("display_name", ""))


@blp.route("/users/<id:user_id>")
class UserView(MethodView):
    @requires(Role.ADMIN)
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, changes: dict[str, Any], user_id: int) -> User:
        """Change a user account (role, site, password, active)"""
        return services.update_user(request_uow(), user_id, changes)
