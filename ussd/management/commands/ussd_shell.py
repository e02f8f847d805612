"""Dial the USSD menu from a terminal, for demos and support: every input goes to the real
/ussd/callback/ view (raw request stored, secret checked, session in the cache) exactly as
Africa's Talking would send it. PINs are read without echo when the screen asks for one."""

import getpass
import sys
import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import RequestFactory

from core.exceptions import InvalidPhoneNumber
from core.phones import normalize_phone
from ussd.services.sessions import session_expects_pin
from ussd.views import ussd_callback

DEFAULT_SERVICE_CODE = "*384*123#"


class Command(BaseCommand):
    help = "Dial the borrower USSD menu from the terminal (type q to hang up)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phone", required=True, help="the borrower's number, any Kenyan form")
        parser.add_argument("--service-code", default="", help="default: the first of USSD_SERVICE_CODES")

    def handle(self, *args: object, **options: str) -> None:
        try:
            phone = normalize_phone(options["phone"])
        except InvalidPhoneNumber as exc:
            raise CommandError(exc.detail) from None
        code = options["service_code"] or next(iter(settings.USSD_SERVICE_CODES), DEFAULT_SERVICE_CODE)
        session_id = f"ATUid_shell_{uuid.uuid4().hex}"
        inputs: list[str] = []
        while True:
            answer = self._dial(session_id=session_id, phone=phone, code=code, text="*".join(inputs))
            self.stdout.write(answer.replace("\n", "\n    ") + "\n")
            if not answer.startswith("CON "):
                return
            typed = self._read(hide=session_expects_pin(session_id=session_id))
            if typed is None or typed.strip().lower() in ("q", "quit"):
                self.stdout.write("(hung up)\n")
                return
            inputs.append(typed.strip())

    def _dial(self, *, session_id: str, phone: str, code: str, text: str) -> str:
        form = {
            "sessionId": session_id,
            "serviceCode": code,
            "phoneNumber": phone,
            "networkCode": "99999",
            "text": text,
        }
        path = "/ussd/callback/"
        if settings.AFRICASTALKING_CALLBACK_SECRET:
            path += "?" + urlencode({"secret": settings.AFRICASTALKING_CALLBACK_SECRET})
        request = RequestFactory().post(
            path,
            data=urlencode(form),
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR="127.0.0.1",
        )
        response = ussd_callback(request)
        return response.content.decode()

    def _read(self, *, hide: bool) -> str | None:
        try:
            if hide and sys.stdin.isatty():
                return getpass.getpass("> ")
            self.stdout.write("> ", ending="")
            self.stdout.flush()
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None
        except (EOFError, KeyboardInterrupt):
            return None
