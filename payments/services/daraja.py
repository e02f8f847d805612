"""The M-Pesa configuration and the Daraja calls made for it: configure, register URLs, test, simulate.

Import these as ``payments.services.daraja``. Every function that talks to Daraja accepts an optional
``client`` (a ``DarajaClient``) so a caller can reuse one; by default it builds one for the configuration.
"""

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidAmount, InvalidInput, InvalidState
from core.money import to_money
from core.phones import normalize_phone
from core.services import audit_record
from payments.clients.daraja import (
    FORBIDDEN_URL_WORDS,
    MSISDN_FORMATS,
    DarajaClient,
    DarajaError,
    callback_url_problem,
)
from payments.codes import is_short_code
from payments.models import MpesaConfiguration, new_callback_token


def _has_forbidden_word(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in FORBIDDEN_URL_WORDS)


def _checked_configuration(
    *,
    environment: str,
    api_version: str,
    response_type: str,
    business_short_code: str,
    has_credentials: bool,
    base_url: str,
) -> tuple[str, str]:
    """Check a configuration's fields before anything is written; returns the short code and the
    base URL as they are stored. Raises ``InvalidInput`` naming the first field that is wrong."""
    Config = MpesaConfiguration
    if environment not in Config.Environment.values:
        raise InvalidInput(f"environment must be one of {', '.join(Config.Environment.values)}")
    if api_version not in Config.ApiVersion.values:
        raise InvalidInput("API version must be v1 or v2")
    if response_type not in Config.ResponseType.values:
        raise InvalidInput("response type must be exactly 'Completed' or 'Cancelled'")
    short_code = str(business_short_code).strip()
    if not is_short_code(short_code):
        raise InvalidInput(f"{short_code!r} is not an M-Pesa short code (5 to 7 digits)")
    if not has_credentials:
        raise InvalidInput("the consumer key and the consumer secret are both required")
    base_url = (base_url or "").strip().rstrip("/")
    try:
        URLValidator(schemes=["http", "https"])(base_url)
    except ValidationError:
        raise InvalidInput(
            "the base URL must be an absolute http(s) address, e.g. https://pay.example.com"
        ) from None
    problem = callback_url_problem(base_url, production=environment == Config.Environment.PRODUCTION)
    if problem:
        raise InvalidInput(f"the base URL cannot carry M-Pesa callbacks: {problem}")
    return short_code, base_url


def mpesa_configure(
    *,
    environment: str,
    consumer_key: str,
    consumer_secret: str,
    business_short_code: str,
    base_url: str,
    api_version: str = "v2",
    response_type: str = "Completed",
    initiator_name: str = "",
    security_credential: str = "",
    actor: Actor | None = None,
) -> tuple[MpesaConfiguration, bool]:
    """Create or update (found by short code) an active M-Pesa configuration; returns ``(config, created)``.

    The consumer key and secret (and the Transaction Status security credential, when given; an
    empty initiator or credential keeps the stored one) are stored encrypted. The callback token is kept (so registered URLs stay
    valid) unless it contains a word Daraja refuses. Writes an audit event without the credentials.
    Raises ``InvalidInput`` for an unknown environment, version or response type, a malformed short code,
    missing credentials, or a base URL Daraja would refuse for callbacks.
    """
    Config = MpesaConfiguration
    short_code, base_url = _checked_configuration(
        environment=environment,
        api_version=api_version,
        response_type=response_type,
        business_short_code=business_short_code,
        has_credentials=bool(consumer_key and consumer_secret),
        base_url=base_url,
    )

    with transaction.atomic():
        config = Config.objects.select_for_update().filter(business_short_code=short_code).first()
        created = config is None
        if config is None:
            config = Config(business_short_code=short_code)
        credentials_changed = (
            created or config.consumer_key != consumer_key or config.consumer_secret != consumer_secret
        )
        config.environment = environment
        config.consumer_key = consumer_key
        config.consumer_secret = consumer_secret
        config.base_url = base_url
        config.api_version = api_version
        config.response_type = response_type
        config.initiator_name = initiator_name or config.initiator_name
        config.security_credential = security_credential or config.security_credential
        config.is_active = True
        if _has_forbidden_word(config.callback_token):
            config.callback_token = new_callback_token()
        config.save()
        audit_record(
            action="mpesa_configuration_created" if created else "mpesa_configuration_updated",
            actor=actor or Actor.system("setup_mpesa"),
            obj=config,
            data={
                "environment": environment,
                "business_short_code": short_code,
                "base_url": base_url,
                "api_version": api_version,
                "response_type": response_type,
                "credentials_changed": credentials_changed,
                "security_credential_changed": bool(security_credential),
            },
        )
    return config, created


def _save_registration(config: MpesaConfiguration, record: dict[str, Any], *fields: str) -> None:
    config.last_registration_at = timezone.now()
    config.last_registration_result = record
    # updated_at stays: registering must not change which configuration is the active one.
    config.save(update_fields=["last_registration_at", "last_registration_result", *fields])


def mpesa_register_urls(*, config: MpesaConfiguration, client: DarajaClient | None = None) -> dict[str, Any]:
    """Register the configuration's validation and confirmation URLs with Daraja.

    Uses the configuration's response type and API version; when Daraja falls back to v1, v1 is saved as
    the configuration's version. Returns the result saved in ``last_registration_result``
    (``{"ok": True, "api_version", "response_type", "answer"}``). Raises ``DarajaError`` after saving
    the failure (``{"ok": False, "error", "code", "http_status", "permanent", ...}``) as the result.
    """
    own_client = client is None
    daraja = client or DarajaClient.for_config(config)
    try:
        result = daraja.register_urls(
            config.business_short_code,
            config.response_type,
            config.confirmation_url,
            config.validation_url,
            version=config.api_version,
        )
    except DarajaError as exc:
        _save_registration(
            config,
            {
                "ok": False,
                "api_version": config.api_version,
                "response_type": config.response_type,
                "error": exc.detail,
                "code": exc.code,
                "http_status": exc.http_status,
                "permanent": exc.permanent,
            },
        )
        raise
    finally:
        if own_client:
            daraja.close()
    record = {
        "ok": True,
        "api_version": result.api_version,
        "response_type": config.response_type,
        "answer": result.answer,
    }
    config.api_version = result.api_version
    _save_registration(config, record, "api_version")
    return record


def mpesa_test_credentials(*, config: MpesaConfiguration, client: DarajaClient | None = None) -> str:
    """Fetch a fresh access token with the configuration's credentials; returns a short success text.

    The new token replaces the shared cached one (Daraja has just invalidated the old). Raises
    ``DarajaError`` (permanent when Daraja refuses the key and secret).
    """
    own_client = client is None
    daraja = client or DarajaClient.for_config(config)
    try:
        daraja.access_token(force=True)
    finally:
        if own_client:
            daraja.close()
    return (
        f"Daraja ({config.get_environment_display()}) accepted the consumer key and secret "
        f"of short code {config.business_short_code}."
    )


def mpesa_simulate(
    *,
    config: MpesaConfiguration,
    phone: str,
    amount: object,
    bill_reference: str,
    msisdn_format: str = "hashed",
    deliver_callbacks: bool = True,
    client: DarajaClient | None = None,
) -> dict[str, Any]:
    """Simulate a customer paying the configuration's short code (sandbox or local emulator only).

    ``phone`` is any common form of a Kenyan mobile number; ``amount`` whole shillings; ``msisdn_format``
    how the emulator writes the MSISDN in its callbacks; ``deliver_callbacks=False`` (emulator only)
    is a payment whose callbacks are lost, for the recovery roads to find. Returns Daraja's answer (the emulator adds the
    ``TransID``). Raises ``InvalidState`` in production, ``InvalidPhoneNumber`` / ``InvalidAmount`` /
    ``InvalidInput`` for bad input, ``DarajaError`` when Daraja refuses or cannot be reached.
    """
    if config.environment == MpesaConfiguration.Environment.PRODUCTION:
        raise InvalidState("M-Pesa has no simulation in production: pay from a real phone instead")
    if msisdn_format not in MSISDN_FORMATS:
        raise InvalidInput(f"MSISDN format must be one of {', '.join(MSISDN_FORMATS)}")
    e164 = normalize_phone(phone)
    value: Decimal = to_money(amount)
    if value <= 0 or value != value.to_integral_value():
        raise InvalidAmount(f"M-Pesa amounts are whole shillings above zero, not {value}")
    own_client = client is None
    daraja = client or DarajaClient.for_config(config)

    def pay() -> dict[str, Any]:
        return daraja.simulate(
            config.business_short_code,
            value,
            e164.removeprefix("+"),
            bill_reference,
            msisdn_format=msisdn_format,
            deliver_callbacks=deliver_callbacks,
        )

    try:
        try:
            return pay()
        except DarajaError as exc:
            # The local emulator forgets registrations when the server restarts (no Redis): register
            # this configuration's URLs again and pay once more, as a developer would by hand.
            if (
                config.environment != MpesaConfiguration.Environment.LOCAL
                or "No URLs registered" not in exc.detail
            ):
                raise
            mpesa_register_urls(config=config, client=daraja)
            return pay()
    finally:
        if own_client:
            daraja.close()


def mpesa_configuration_save(
    *,
    config: MpesaConfiguration,
    changed_fields: list[str],
    actor: Actor,
    consumer_key: str = "",
    consumer_secret: str = "",
    security_credential: str = "",
) -> MpesaConfiguration:
    """Save a configuration edited by staff. A credential given replaces the stored one; an empty one
    keeps it. The audit event names the fields that changed, never the credentials themselves."""
    created = config.pk is None
    if consumer_key:
        config.consumer_key = consumer_key
    if consumer_secret:
        config.consumer_secret = consumer_secret
    if security_credential:
        config.security_credential = security_credential
    with transaction.atomic():
        config.save()
        audit_record(
            action="mpesa_configuration_created" if created else "mpesa_configuration_updated",
            actor=actor,
            obj=config,
            data={
                "changed": sorted(set(changed_fields)),
                "credentials_changed": [
                    name
                    for name, value in (
                        ("consumer_key", consumer_key),
                        ("consumer_secret", consumer_secret),
                        ("security_credential", security_credential),
                    )
                    if value
                ],
            },
        )
    return config
