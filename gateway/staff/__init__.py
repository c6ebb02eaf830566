"""Staff side of the gateway: accounts, sessions and CSRF, roles, the audit trail, the JSON API under
/api/staff/ (with its OpenAPI document) and the console pages under /staff/.

Modules: passwords (argon2), accounts, auth (sessions, cookie, CSRF, roles, login throttling), audit,
errors (JSON errors), schemas (pydantic models), openapi (route table type and document), api.
"""
