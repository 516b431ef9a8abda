"""Logins: SOAP ``login`` (``POST /services/Soap/u/{version}``) and the OAuth JWT bearer grant.

SOAP login takes the password with the security token appended and answers
a ``loginResponse`` with a new session id, or a ``LoginFault``
(``INVALID_LOGIN``) with status 500, as Salesforce does. The JWT bearer grant
(``POST /services/oauth2/token``) checks the connected app (``iss``), the RS256
signature, the audience (login/test or a My Domain host), expiry, and that
the user (``sub``) exists.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any, Mapping

from simulators.salesforce.state import ORG_ID

if TYPE_CHECKING:
    from simulators.salesforce.state import SalesforceState

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_NS = "urn:partner.soap.sforce.com"

_INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


def _soap_fault(code: str, message: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {_xml_escape(message)}</faultstring>
<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{_xml_escape(message)}</sf:exceptionMessage></sf:LoginFault></detail>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def soap_login(state: SalesforceState, raw: bytes, base_url: str, version: str) -> tuple[int, str]:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        return 500, _soap_fault("INVALID_LOGIN", _INVALID_LOGIN)
    username = root.findtext(f".//{{{PARTNER_NS}}}username")
    password = root.findtext(f".//{{{PARTNER_NS}}}password")
    with state.lock:
        login = state.logins.get(username or "")
        if login is None or password != login.password + login.security_token:
            return 500, _soap_fault("INVALID_LOGIN", _INVALID_LOGIN)
        token = state.issue_token(login.username)
    server = f"{base_url}/services/Soap/u/{version}/{ORG_ID[:15]}"
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns="{PARTNER_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><loginResponse><result>
<metadataServerUrl>{base_url}/services/Soap/m/{version}/{ORG_ID[:15]}</metadataServerUrl>
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>
<serverUrl>{server}</serverUrl><sessionId>{token}</sessionId><userId>{login.user_id}</userId>
<userInfo><organizationId>{ORG_ID}</organizationId><userName>{_xml_escape(login.username)}</userName></userInfo>
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""
    return 200, body


def jwt_login(state: SalesforceState, form: Mapping[str, str], base_url: str) -> tuple[int, Any]:
    import jwt  # PyJWT, installed with simple-salesforce

    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
    assertion = form.get("assertion") or ""
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return 400, {"error": "invalid_grant", "error_description": "invalid assertion"}
    with state.lock:
        public_key = state.jwt_consumers.get(str(unverified.get("iss")))
        audiences = set(state.jwt_audiences)
        if public_key is None:
            return 400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
    audience = unverified.get("aud")
    if not (audience in audiences or (isinstance(audience, str)
                                      and re.fullmatch(r"https://[\w.-]+\.my\.salesforce\.com", audience))):
        return 400, {"error": "invalid_grant", "error_description": "audience is invalid"}
    try:
        claims = jwt.decode(assertion, public_key, algorithms=["RS256"], audience=audience,
                            options={"require": ["exp", "iss", "sub", "aud"]})
    except jwt.ExpiredSignatureError:
        return 400, {"error": "invalid_grant", "error_description": "expired authorization code"}
    except jwt.PyJWTError:
        return 400, {"error": "invalid_grant", "error_description": "invalid assertion"}
    username = claims.get("sub")
    with state.lock:
        if username not in state.logins:
            return 400, {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}
        token = state.issue_token(username)
        user_id = state.logins[username].user_id
    return 200, {"access_token": token, "scope": "api", "instance_url": base_url,
                 "id": f"{base_url}/id/{ORG_ID}/{user_id}", "token_type": "Bearer"}
