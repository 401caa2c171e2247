"""A corpus of realistic health messages for the IMAP stress profile (APPEND and seeding).

    messages = corpus()          # the same bytes on every call and in every process

Five shapes, as a practitioner's mailbox has them, each built with the standard library's
``email`` package (so headers are folded and encoded as real clients do):

- a plain-text letter, UTF-8 quoted-printable, with a French subject as an RFC 2047 encoded word;
- a reply to it (``Re:``, ``In-Reply-To``, ``References``, quoted text);
- ``multipart/alternative``: the same letter in text and HTML;
- ``multipart/mixed``: a letter and a PDF report (20–120 KiB);
- ``multipart/mixed`` around a ``multipart/alternative`` and a larger PDF (150–240 KiB) plus
  a small one: about 450 KiB once base64-encoded, the largest.

The PDFs are well-formed (header, objects, cross-reference table, trailer) with a text page
and a compressed-looking stream of random bytes for bulk. Everything comes from a fixed seed.
"""

from __future__ import annotations

import functools
import random
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

#: (display name, address) of senders from several health organisations.
SENDERS = [
    ("Dr Hélène Lefèvre", "helene.lefevre@chu-lyon.mssante.fr"),
    ("Laboratoire Cerballiance Rhône", "resultats@cerballiance.mssante.fr"),
    ("Dr François Nguyễn", "francois.nguyen@medecin.mssante.fr"),
    ("Secrétariat de Cardiologie", "cardio@ch-annecy.mssante.fr"),
    ("Pharmacie de l'Hôtel de Ville", "officine.hdv@pharmacien.mssante.fr"),
    ("Imagerie Médicale Sud", "imagerie-sud@radiologie.mssante.fr"),
    ("Dr Amina Diallo", "amina.diallo@medecin.mssante.fr"),
    ("Service des Urgences", "urgences@chu-grenoble.mssante.fr"),
]
SUBJECTS = [
    "Compte rendu de consultation – Mme Élodie Bérard",
    "Résultats de biologie : créatininémie, hémoglobine glyquée",
    "Lettre de liaison à la sortie d'hospitalisation",
    "Demande d'avis cardiologique – douleur thoracique à l'effort",
    "Ordonnance renouvelée (traitement antihypertenseur)",
    "Compte rendu opératoire : arthroscopie du genou gauche",
    "Imagerie : IRM lombaire, résultats détaillés",
    "Suivi post-hospitalisation – rééducation fonctionnelle",
    "Vaccination antigrippale : rappel pour vos patients âgés",
    "Échographie abdominale – contrôle à 3 mois",
]
WORDS = (
    "patient patiente suivi traitement bilan constantes normales examen clinique antécédents "
    "allergie posologie contrôle rendez-vous tension artérielle glycémie créatinine hémoglobine "
    "avis cardiologique échographie recommandations surveillance évolution favorable douleur "
    "épigastrique fébrile apyrétique auscultation pulmonaire claire œdème membres inférieurs "
    "kinésithérapie rééducation hospitalisation sortie domicile médecin traitant"
).split()
EPOCH = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)

#: Shapes and their weights in the corpus (of every 20 messages).
SHAPES = (
    ("plain", 6),
    ("reply", 3),
    ("alternative", 5),
    ("pdf", 4),
    ("nested", 2),
)


def _paragraphs(rng: random.Random, size: int) -> list[str]:
    out: list[str] = []
    total = 0
    while total < size:
        sentences = []
        for _ in range(rng.randint(2, 5)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(7, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        out.append(" ".join(sentences))
        total += len(out[-1])
    return out


def _letter(rng: random.Random, size: int, signer: str) -> str:
    body = "\n\n".join(_paragraphs(rng, size))
    return f"Cher confrère,\n\n{body}\n\nBien confraternellement,\n{signer}\n"


def _html(text: str) -> str:
    paragraphs = "".join(
        f"<p>{p.replace('&', '&amp;').replace('<', '&lt;')}</p>\n" for p in text.split("\n\n")
    )
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        '<title>Courrier</title></head>\n<body style="font-family: Arial, sans-serif">\n'
        f"{paragraphs}</body></html>\n"
    )


def pdf(rng: random.Random, size: int, title: str) -> bytes:
    """A well-formed PDF of about ``size`` bytes: one text page and a bulk stream."""
    text = title.encode("latin-1", "replace").replace(b"(", b"[").replace(b")", b"]")
    page = b"BT /F1 14 Tf 72 760 Td (" + text + b") Tj ET"
    bulk = rng.randbytes(max(0, size - 900))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(page) + page + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width 256 /Height 256 /BitsPerComponent 8 "
        b"/ColorSpace /DeviceGray /Filter /FlateDecode /Length %d >>\nstream\n"
        % len(bulk)
        + bulk
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def message(rng: random.Random, index: int, shape: str) -> bytes:
    name, sender = rng.choice(SENDERS)
    subject = rng.choice(SUBJECTS)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(name, addr_spec=sender)
    msg["To"] = Address("Dr Jean Dupré", addr_spec="jean.dupre@hygie.test")
    if rng.random() < 0.3:
        msg["Cc"] = Address("Secrétariat médical", addr_spec="secretariat@hygie.test")
    when = EPOCH + timedelta(minutes=37 * index + rng.randint(0, 30))
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<corpus{index}.{rng.getrandbits(48):012x}@{sender.split('@')[1]}>"
    msg["Subject"] = f"Re: {subject}" if shape == "reply" else subject
    if shape == "reply":
        parent = f"<corpus{max(0, index - 1)}.{rng.getrandbits(32):08x}@hygie.test>"
        msg["In-Reply-To"] = parent
        msg["References"] = parent
    text = _letter(rng, rng.randint(900, 5000), name)
    if shape == "reply":
        original = _letter(rng, 1500, "Dr Jean Dupré").splitlines()
        quoted = "\n".join(f"> {line}" for line in original)
        intro = f"Le {format_datetime(when)}, vous avez écrit :"
        text = f"{_letter(rng, 600, name)}\n{intro}\n{quoted}\n"
    msg.set_content(text, cte="quoted-printable")
    if shape in ("alternative", "nested"):
        msg.add_alternative(_html(text), subtype="html", cte="quoted-printable")
    if shape == "pdf":
        report = pdf(rng, rng.randint(20_000, 120_000), subject)
        msg.add_attachment(
            report, maintype="application", subtype="pdf", filename="compte-rendu.pdf"
        )
    if shape == "nested":
        msg.add_attachment(
            pdf(rng, rng.randint(150_000, 240_000), subject),
            maintype="application",
            subtype="pdf",
            filename="résultats-complets.pdf",
        )
        msg.add_attachment(
            pdf(rng, rng.randint(8_000, 20_000), "Ordonnance"),
            maintype="application",
            subtype="pdf",
            filename="ordonnance.pdf",
        )
    for n, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        # the generator would draw boundaries from the global random state: fixed ones instead
        part.set_boundary(f"=_hygie_{index}_{n}_{rng.getrandbits(40):010x}")
    return msg.as_bytes(policy=SMTP)


@functools.cache
def corpus(count: int = 40, seed: int = 2026) -> tuple[bytes, ...]:
    """``count`` messages in the proportions of :data:`SHAPES`, always the same ones."""
    rng = random.Random(seed)
    cycle = [shape for shape, weight in SHAPES for _ in range(weight)]
    return tuple(message(rng, i, cycle[i % len(cycle)]) for i in range(count))


def shape_counts(count: int = 40) -> dict[str, int]:
    cycle = [shape for shape, weight in SHAPES for _ in range(weight)]
    counts: dict[str, int] = {}
    for i in range(count):
        counts[cycle[i % len(cycle)]] = counts.get(cycle[i % len(cycle)], 0) + 1
    return counts
