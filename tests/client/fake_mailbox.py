"""An in-memory mailbox that fits the app's ``MailReader``/``MailAccount`` protocols, with
fixed dates and names, for the SVG snapshots and the README screenshots (a real server's
dates and ports change on every run)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage, Message
from email.utils import format_datetime, parsedate_to_datetime

from client_tui.compose import read_message
from client_tui.config import Account
from client_tui.imap import Folder, MessageSummary, SelectedFolder, Token

ME = "claire.martin@hygie.test"
PARIS = timezone(timedelta(hours=1))
START = datetime(2025, 3, 14, 8, 30, tzinfo=PARIS)

# (from, subject, text, attachment name or "", flags, asks for a read receipt)
INBOX = [
    (
        "Dr Jean Dupont <jean.dupont@hygie.test>",
        "Compte rendu d'échographie abdominale",
        "Bonjour Claire,\n\nVoici le compte rendu de l'échographie de Mme Lefèvre réalisée ce "
        "matin. Foie de taille normale, pas de lésion focale. Vésicule alithiasique.\n\n"
        "Je reste disponible.\n\nBien confraternellement,\nJean Dupont\nRadiologue",
        "CR-echographie.pdf",
        set(),
        True,
    ),
    (
        "Laboratoire Biolab <resultats@biolab.hygie.test>",
        "Résultats de biologie — NFS, CRP",
        "Bonjour,\n\nLes résultats sont joints.\n\nBiolab",
        "resultats.pdf",
        {"\\Seen"},
        False,
    ),
    (
        "Secrétariat cardiologie <cardio@chu.hygie.test>",
        "Rendez-vous de consultation",
        "Le rendez-vous est fixé au 2 avril à 14 h.",
        "",
        {"\\Seen", "\\Flagged"},
        False,
    ),
    (
        "Dr Paul Bernard <paul.bernard@hygie.test>",
        "Avis sur traitement anticoagulant",
        "Claire,\n\nQu'en penses-tu ?\n\nPaul",
        "",
        set(),
        False,
    ),
    (
        "Pharmacie du Parc <pharmacie.parc@hygie.test>",
        "Renouvellement d'ordonnance",
        "Merci de renouveler l'ordonnance de M. Garnier.",
        "",
        {"\\Seen", "\\Answered"},
        False,
    ),
    (
        "Dr Jean Dupont <jean.dupont@hygie.test>",
        "Re: Patient commun",
        "D'accord, je le vois la semaine prochaine.",
        "",
        {"\\Seen"},
        False,
    ),
]


def _message(index: int, sender: str, subject: str, text: str, attachment: str,
             receipt: bool) -> bytes:  # fmt: skip
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"Dr Claire Martin <{ME}>"
    message["Subject"] = subject
    message["Date"] = format_datetime(START - timedelta(hours=7 * index))
    message["Message-ID"] = f"<fake-{index}@hygie.test>"
    if receipt:
        message["Disposition-Notification-To"] = sender
    message.set_content(text)
    if attachment:
        message.add_attachment(b"%PDF-1.4\n" + b"0" * 40000, maintype="application",
                               subtype="pdf", filename=attachment)  # fmt: skip
    return message.as_bytes()


def agenda_mail() -> dict[str, list[bytes]]:
    """iMIP messages for the agenda pictures: two invitations received (one answered), and
    a meeting Claire organises, which Paul accepted."""
    from client_tui.appointments import build_agenda as agenda_of
    from client_tui.appointments import reply_message
    from tests.client.invitations import invitation

    jean, cardio, paul = "jean.dupont@hygie.test", "cardio@chu.hygie.test", PAUL
    week = timedelta(days=7)
    rcp = invitation(jean, ME, "RCP oncologie digestive", START.replace(hour=14) + week / 7 * 4,
                     uid="rcp", sent=START - week)  # fmt: skip
    consult = invitation(cardio, ME, "Avis cardio Mme Lefèvre", START.replace(hour=9) + week,
                         uid="cardio", sent=START - week)  # fmt: skip
    staff = invitation(ME, paul, "Staff du service", START.replace(hour=8) + timedelta(days=11),
                       uid="staff", sent=START - week)  # fmt: skip
    vaccine = invitation(jean, ME, "Vaccination antigrippale", START.replace(hour=11) + week * 2,
                         uid="vaccin", sent=START - week)  # fmt: skip
    [accepted] = agenda_of(ME, [consult]).between(START - week, START + week * 5)
    answer = reply_message(accepted, ME, "ACCEPTED", now=START - week / 2).as_bytes()
    [theirs] = agenda_of(paul, [staff]).between(START - week, START + week * 5)
    paul_accepts = reply_message(theirs, paul, "ACCEPTED", now=START - week / 3).as_bytes()
    return {"INBOX": [rcp, consult, paul_accepts, vaccine], "Sent": [answer, staff]}


PAUL = "paul.bernard@hygie.test"


class FakeReader:
    def __init__(self, with_agenda: bool = False) -> None:
        self.selected: SelectedFolder | None = None
        self.messages: dict[str, dict[int, tuple[set[str], bytes, MessageSummary]]] = {
            name: {} for name in ("INBOX", "Drafts", "Sent", "Archive", "Trash")
        }
        for index, (sender, subject, text, attachment, flags, receipt) in enumerate(INBOX):
            uid = len(INBOX) - index
            raw = _message(index, sender, subject, text, attachment, receipt)
            summary = MessageSummary(
                uid=uid, flags=set(flags), size=len(raw),
                date=START - timedelta(hours=7 * index), sender=sender, to=ME,
                subject=subject, has_attachment=bool(attachment), wants_mdn=receipt,
            )  # fmt: skip
            self.messages["INBOX"][uid] = (summary.flags, raw, summary)
        if with_agenda:
            for folder, raws in agenda_mail().items():
                box = self.messages[folder]
                for raw in raws:
                    uid = max(box, default=0) + 1 if folder != "INBOX" else 100 + len(box)
                    read = read_message(raw)
                    summary = MessageSummary(
                        uid=uid, flags={"\\Seen"}, size=len(raw),
                        date=parsedate_to_datetime(read.date), sender=read.sender, to=read.to,
                        subject=read.subject, has_attachment=False, wants_mdn=False,
                        has_calendar=True,
                    )  # fmt: skip
                    box[uid] = (summary.flags, raw, summary)
        self._stop = asyncio.Event()

    def clone(self) -> FakeReader:
        """Another connection to the same mailbox (its own selected folder)."""
        other = FakeReader.__new__(FakeReader)
        other.selected = None
        other.messages = self.messages
        other._stop = asyncio.Event()
        return other

    async def folders(self) -> list[Folder]:
        uses = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Archive": "\\Archive", "Trash": "\\Trash"}
        return [
            Folder(name, frozenset({uses[name]} if name in uses else set()), "/",
                   len(box), sum(1 for f, _, _ in box.values() if "\\Seen" not in f))
            for name, box in self.messages.items()
        ]  # fmt: skip

    async def select(self, folder: str) -> SelectedFolder:
        self.selected = SelectedFolder(folder, len(self.messages[folder]), 100, 1)
        return self.selected

    def _box(self) -> dict[int, tuple[set[str], bytes, MessageSummary]]:
        assert self.selected is not None
        return self.messages[self.selected.name]

    async def uids(self) -> list[int]:
        return sorted(self._box())

    async def search_text(self, text: str) -> list[int]:
        return sorted(uid for uid, (_, raw, _) in self._box().items()
                      if text.lower().encode() in raw.lower())  # fmt: skip

    async def summaries(self, uids: Sequence[int]) -> list[MessageSummary]:
        return [self._box()[uid][2] for uid in uids if uid in self._box()]

    async def fetch_message(self, uid: int, *, mark_seen: bool = True) -> bytes:
        flags, raw, _ = self._box()[uid]
        if mark_seen:
            flags.add("\\Seen")
        return raw

    async def store_flags(self, uids: Sequence[int], flags: str, *, add: bool = True) -> None:
        for uid in uids:
            target = self._box()[uid][0]
            for flag in flags.split():
                if add:
                    target.add(flag)
                else:
                    target.discard(flag)

    async def move(self, uids: Sequence[int], folder: str) -> None:
        for uid in uids:
            self.messages[folder][uid] = self._box().pop(uid)

    async def delete_permanently(self, uids: Sequence[int]) -> None:
        for uid in uids:
            self._box().pop(uid, None)

    async def append(self, folder: str, message: bytes, flags: str = "\\Seen") -> int | None:
        return None

    async def idle(self, limit: float = 25 * 60) -> AsyncIterator[list[Token]]:
        await self._stop.wait()
        return
        yield []  # an async generator that yields nothing until stopped

    def stop_idle(self) -> None:
        self._stop.set()

    async def logout(self) -> None:
        self._stop.set()


class FakeAccount:
    def __init__(self, account: Account, reader: FakeReader) -> None:
        self.account = account
        self.reader = reader
        self.sent: list[Message] = []

    async def imap(self, *, fresh: bool = True) -> FakeReader:
        return self.reader.clone() if fresh else self.reader

    async def send(self, message: Message, *, notify_success: bool = False) -> None:
        self.sent.append(message)


def demo_account() -> Account:
    return Account(name="claire", address=ME, host="mail.hygie.test",
                   ca_file="~/hygie-root-ca.pem")  # fmt: skip


async def fake_connect(account: Account, secret: str) -> tuple[FakeAccount, FakeReader]:
    reader = FakeReader()
    return FakeAccount(account, reader), reader


async def fake_connect_with_agenda(account: Account,
                                   secret: str) -> tuple[FakeAccount, FakeReader]:  # fmt: skip
    reader = FakeReader(with_agenda=True)
    return FakeAccount(account, reader), reader
