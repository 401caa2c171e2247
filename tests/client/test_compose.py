"""Messages without a server: HTML shown as text, replies and forwards, the MDN, safe
attachment names, and a configuration that refuses secrets."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from client_tui.compose import (
    Draft,
    build_mdn,
    build_message,
    forward_draft,
    html_to_text,
    read_message,
    reply_draft,
    safe_filename,
    save_attachment,
)
from client_tui.config import ConfigError, load_config

ME = "claire.martin@hygie.test"


def received(html_only: bool = False) -> bytes:
    message = EmailMessage()
    message["From"] = "Dr Jean Dupont <jean.dupont@hygie.test>"
    message["To"] = f"Claire <{ME}>, paul.bernard@hygie.test"
    message["Cc"] = "secretariat@hygie.test"
    message["Subject"] = "Compte rendu"
    message["Message-ID"] = "<cr-1@hygie.test>"
    message["Disposition-Notification-To"] = "jean.dupont@hygie.test"
    if html_only:
        message.set_content("<html><head><style>p{}</style></head><body><p>Bonjour&nbsp;"
                            "Claire,</p><ul><li>TA 12/8</li></ul><script>x()</script></body>"
                            "</html>", subtype="html")  # fmt: skip
    else:
        message.set_content("Bonjour Claire,\nTA 12/8.\n")
        message.add_attachment(b"%PDF", maintype="application", subtype="pdf",
                               filename="../../etc/cr.pdf")  # fmt: skip
    return message.as_bytes()


def test_html_is_shown_as_text() -> None:
    text = read_message(received(html_only=True)).text
    assert "Bonjour\xa0Claire," in text or "Bonjour Claire," in text
    assert "• TA 12/8" in text
    assert "x()" not in text and "p{}" not in text
    assert html_to_text("<p>a</p><p>b</p>") == "a\n\nb"


def test_attachment_names_cannot_escape(tmp_path: Path) -> None:
    message = read_message(received())
    [attachment] = message.attachments
    assert safe_filename(attachment.filename) == "cr.pdf"
    first = save_attachment(attachment, tmp_path)
    second = save_attachment(attachment, tmp_path)
    assert first == tmp_path / "cr.pdf" and second == tmp_path / "cr (2).pdf"


def test_reply_all_and_forward() -> None:
    original = read_message(received())
    reply = reply_draft(original, ME, to_all=True)
    assert reply.to.endswith("<jean.dupont@hygie.test>")
    assert ME not in reply.cc and "paul.bernard@hygie.test" in reply.cc
    assert "secretariat@hygie.test" in reply.cc
    assert reply.subject == "Re: Compte rendu" and "> TA 12/8." in reply.body
    built = build_message(reply)
    assert built["In-Reply-To"] == "<cr-1@hygie.test>"
    forward = forward_draft(original, ME)
    assert forward.subject == "Fwd: Compte rendu"
    assert [name for name, _, _ in forward.forwarded] == ["../../etc/cr.pdf"]


def test_receipt_requests_and_mdn() -> None:
    draft = Draft(sender=ME, to="jean.dupont@hygie.test", subject="x", read_receipt=True)
    assert build_message(draft)["Disposition-Notification-To"] == ME
    mdn = build_mdn(read_message(received()), ME)
    parsed = email.message_from_bytes(mdn.as_bytes(), policy=default_policy)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "disposition-notification"
    assert parsed["To"] == "jean.dupont@hygie.test"
    report = parsed.get_payload()[1]  # type: ignore[index]
    assert report.get_content_type() == "message/disposition-notification"
    assert "Original-Message-ID: <cr-1@hygie.test>" in mdn.as_string()
    assert "manual-action/MDN-sent-manually; displayed" in mdn.as_string()


def test_config_refuses_secrets_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[accounts.a]\naddress = "a@b.test"\nhost = "h"\npassword = "s"\n')
    with pytest.raises(ConfigError, match="password"):
        load_config(path)
    path.write_text('[accounts.a]\naddress = "a@b.test"\nhost = "h"\nauth = "certificate"\n')
    with pytest.raises(ConfigError, match="pkcs12"):
        load_config(path)
    path.write_text("not toml [")
    with pytest.raises(ConfigError):
        load_config(path)
    assert load_config(tmp_path / "absent.toml").accounts == {}
