"""The messages the catalogue sends to editors (issue 10 items 2–3): the acknowledgement of
a manifest, the list of what is wrong with it, and each decision. Plain text in French (the
editors' language), ``Auto-Submitted`` (RFC 3834) so that no robot answers a robot."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from catalogue.registry import App
from catalogue.status import REFERENCED, REFUSED, SUSPENDED, WITHDRAWN

SERVICE = "catalogue"
_DECISIONS = {
    REFERENCED: "référencée",
    REFUSED: "refusée",
    SUSPENDED: "suspendue",
    WITHDRAWN: "retirée du catalogue",
}


def _message(
    from_address: str, to: str, subject: str, text: str, domain: str,
    *, in_reply_to: str | None = None, reply: bool = True,
) -> bytes:  # fmt: skip
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Catalogue des applications <{from_address}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-replied" if reply else "auto-generated"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(text)
    return message.as_bytes()


def acknowledgement(
    from_address: str, to: str, app: App, version: int, label: str, domain: str,
    in_reply_to: str | None,
) -> bytes:  # fmt: skip
    if version == 1:
        what = f"L'application « {app.name} » est enregistrée sous le numéro {app.id}."
    else:
        what = (
            f"La version {version} ({label}) de l'application « {app.name} » (numéro {app.id}) "
            "est ouverte à la revue."
        )
        if app.live_version is not None:
            what += f" La version {app.live_version} reste en vigueur pendant la revue."
    text = (
        f"Bonjour,\n\nVotre manifeste est reçu et valide.\n{what}\n\n"
        "La revue porte sur chacun des critères de référencement ; vous recevrez un message "
        "à chaque décision.\n"
    )
    return _message(
        from_address, to, f"Catalogue : manifeste reçu ({app.key} {label})", text, domain,
        in_reply_to=in_reply_to,
    )  # fmt: skip


def errors(
    from_address: str, to: str, problems: list[str], domain: str, in_reply_to: str | None
) -> bytes:
    lines = "\n".join(f"- {p}" for p in problems)
    text = (
        "Bonjour,\n\nVotre manifeste n'est pas enregistré. "
        f"{len(problems)} problème(s) :\n\n{lines}\n\n"
        "Corrigez-le et envoyez-le de nouveau (le schéma est décrit dans docs/catalogue.md).\n"
    )
    return _message(
        from_address, to, f"Catalogue : manifeste refusé ({len(problems)} erreur(s))", text,
        domain, in_reply_to=in_reply_to,
    )  # fmt: skip


def decision(
    from_address: str, to: str, app: App, decided: str, version: int | None, reason: str,
    domain: str,
) -> bytes:  # fmt: skip
    which = f" (version {version})" if version is not None else ""
    text = (
        f"Bonjour,\n\nL'application « {app.name} » (numéro {app.id}){which} est "
        f"{_DECISIONS[decided]}.\n\nMotif : {reason}\n"
    )
    if decided in (SUSPENDED, WITHDRAWN):
        text += "\nElle n'a plus accès aux patients qui l'avaient connectée.\n"
    return _message(
        from_address, to, f"Catalogue : {app.key} {_DECISIONS[decided]}", text, domain,
        reply=False,
    )  # fmt: skip
