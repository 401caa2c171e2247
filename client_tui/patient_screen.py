"""Send a document to a patient: the patient's INS, the document type (LOINC), the PDF and/or
CDA files; the attachments travel as one IHE_XDM.zip built by the registered XDM builder
(``compose.build_xdm_attachment``, dossier/xdm.py's job, never the client's)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, TextArea

from client_tui.compose import (
    Draft,
    PatientTraits,
    XdmUnavailable,
    build_message,
    build_xdm_attachment,
    parse_birth_date,
)
from client_tui.context import client_of
from directory.ins import patient_address as ins_address
from dossier.errors import DossierError
from dossier.ins import check_matricule
from dossier.loinc import DMP_TYPES

if TYPE_CHECKING:
    from client_tui.app import HygieClient

# The document types the dossier files (the DMP value set, dossier/loinc.py).
DOCUMENT_TYPES: list[tuple[str, str]] = [(t.code, t.label) for t in DMP_TYPES.values()]


def patient_address(ins: str, my_address: str) -> str:
    """``<INS>@patient.<domain>`` (design §5), the domain being the practitioner's own."""
    return ins_address(ins, my_address.rpartition("@")[2])


class PatientDocumentScreen(Screen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    @property
    def client(self) -> HygieClient:
        return client_of(self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="compose"):
            yield Static("[b]Send a document to a patient[/b] · IHE_XDM.zip · a lone PDF "
                         "needs the traits", id="compose-title")  # fmt: skip
            with Horizontal(classes="field"):
                yield Label("INS", classes="field-label")
                yield Input(id="ins", placeholder="15-character INS matricule")
            with Horizontal(classes="field"):
                yield Label("Nom", classes="field-label")
                yield Input(id="family", placeholder="nom de naissance")
                yield Label("Prénoms", classes="field-label")
                yield Input(id="given", placeholder="prénoms de naissance")
            with Horizontal(classes="field"):
                yield Label("Né(e) le", classes="field-label")
                yield Input(id="birth-date", placeholder="JJ/MM/AAAA")
                yield Label("Sexe", classes="field-label")
                yield Select([("F", "F"), ("M", "M")], prompt="F/M", id="sex")
            with Horizontal(classes="field"):
                yield Label("Type", classes="field-label")
                choices = [(f"{label} ({code})", code) for code, label in DOCUMENT_TYPES]
                yield Select(choices, value=DOCUMENT_TYPES[0][0], allow_blank=False,
                             id="doctype")  # fmt: skip
            with Horizontal(classes="field"):
                yield Label("Files", classes="field-label")
                yield Input(id="files", placeholder="~/cr.pdf, ~/cr.xml (PDF and/or CDA)")
            with Horizontal(classes="field"):
                yield Label("Subject", classes="field-label")
                yield Input(
                    id="subject", placeholder="default: XDM/1.0/DDM+<type> <NOM> <prénom> <date>"
                )
            yield TextArea("", id="body", soft_wrap=True)
            with Horizontal(id="compose-options"):
                yield Button("Send", variant="primary", id="send")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ins").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_send()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_send(self) -> None:
        ins = self.query_one("#ins", Input).value.strip()
        typed = self.query_one("#files", Input).value.split(",")
        files = [Path(p.strip()).expanduser() for p in typed if p.strip()]
        # Design §5: 13 characters (2A/2B for Corsica) and a 2-digit key; the server checks
        # that the INS is qualified.
        try:
            ins = check_matricule(ins)
        except DossierError as exc:
            self.notify(f"INS: {exc.reason}", severity="warning")
            return
        missing = [f for f in files if not f.is_file()]
        if not files or missing:
            self.notify(f"No such file: {missing[0]}" if missing else "Choose the document",
                        severity="warning")  # fmt: skip
            return
        try:
            traits = self.traits()
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        code = str(self.query_one("#doctype", Select).value)
        self.send_document(ins, code, files, traits)

    def traits(self) -> PatientTraits | None:
        """The typed identity traits: none at all (a CDA brings its own) or all four."""
        family = self.query_one("#family", Input).value.strip()
        given = self.query_one("#given", Input).value.strip()
        born = self.query_one("#birth-date", Input).value.strip()
        sex = self.query_one("#sex", Select).value
        if not (family or given or born or isinstance(sex, str)):
            return None
        if not (family and given and born and isinstance(sex, str)):
            raise ValueError("Give all the identity traits: nom, prénoms, date, sexe")
        return PatientTraits(family, given, parse_birth_date(born), sex)

    @work(exclusive=True, group="send")
    async def send_document(self, ins: str, code: str, files: list[Path],
                            traits: PatientTraits | None) -> None:  # fmt: skip
        label = dict(DOCUMENT_TYPES).get(code, code)
        me = self.client.account_address
        subject = self.query_one("#subject", Input).value
        draft = Draft(sender=me, to=patient_address(ins, me), subject=subject,
                      body=self.query_one("#body", TextArea).text)  # fmt: skip
        try:
            author = await self.client.document_author()
            xdm = build_xdm_attachment(files, ins, code, traits=traits, author=author)
            message = build_message(draft, [("IHE_XDM.zip", xdm, "application/zip")])
            if not str(message["Subject"]).strip():
                del message["Subject"]
                message["Subject"] = f"XDM/1.0/DDM+{label}"
            await self.client.send(message)
        except (XdmUnavailable, OSError) as exc:
            self.notify(str(exc), title="Not sent", severity="error", timeout=10)
            return
        except Exception as exc:  # every failure becomes a notification, never a traceback
            self.notify(self.client.describe(exc), title="Not sent", severity="error",
                        timeout=10)  # fmt: skip
            return
        self.notify(f"Document sent to patient {ins[:1]}…{ins[-2:]}", title="Sent")
        self.dismiss(True)
