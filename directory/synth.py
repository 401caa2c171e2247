"""Format-faithful synthetic extracts for tests and benchmarks (``hygie directory synth``).

The files have the real header names and layout (UTF-8, ``|`` after every field), plausible
French names with accents, RPPS numbers with a valid Luhn check digit, real profession codes
(TRE_G15) and savoir-faire codes (TRE_R38), and towns with their postcodes. Practitioner
number *i* always has the same RPPS, names and specialty, so a PS_LibreAcces file and an
MSSanté file made with the same ``--rows`` scale describe the same people.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import IO

from directory.extracts import MSS_HEADER, MSSANTE, PS_HEADER, PS_LIBREACCES
from directory.idnat import luhn_digit
from directory.text import squash

FAMILY = (
    (
        "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent "
        "Lefèvre Michel Garcia David Bertrand Roux Vincent Fournier Morel Girard André Lefebvre "
        "Mercier Dupont Lambert Bonnet François Martinez Legrand Garnier Faure Rousseau Blanc "
        "Guérin Muller Henry Roussel Nicolas Perrin Morin Mathieu Clément Gauthier Dumont Lopez "
        "Fontaine Chevalier Robin Masson Sanchez Gérard Nguyen Boyer Denis Lemaire Duval Joly "
        "Gautier Roger Roche Roy Noël Meyer Lucas Meunier Pérez Marchand Dufour Blanchard Barbier "
        "Brun Dumas Brunet Schmitt Leroux Colin Fernandez Renard Arnaud Rolland Caron Aubert "
        "Giraud Leclerc Vidal Bourgeois Renaud Lemoine Picard Gaillard Lacroix Fabre Dupuis "
        "Olivier Hubert Guillot Rivière Guillaume Adam Moulin Berger Lecomte Ménard Fleury "
        "Deschamps Carpentier Maillard Marchal Aubry Vasseur Renault Jacquet Collet Prévost "
        "Poirier Charpentier Royer Huet Baron Dupuy Pons Carré Breton Rémy Schneider Perrot "
        "Guyot Marty Cousin Le_Gall Da_Silva Le_Roux Saint-Martin Étienne Bénard Lévêque Héritier"
    )
    .replace("_", " ")
    .split()
)
GIVEN_F = (
    "Marie Nathalie Isabelle Sylvie Catherine Françoise Valérie Christine Sandrine Sophie "
    "Céline Véronique Stéphanie Camille Léa Chloé Manon Inès Émilie Hélène Agnès Anaïs Zoé "
    "Mathilde Élodie Aurélie Amélie Noémie Clémence Maëlle"
).split()
GIVEN_M = (
    "Jean Philippe Michel Alain Nicolas Christophe Pierre Stéphane Laurent Frédéric Éric "
    "David Julien Sébastien Thomas Olivier François Jérôme Mathieu Antoine Hugo Louis Théo "
    "Raphaël Gaël Loïc Benoît Jérémy Noé Aurélien"
).split()

#: (TRE_G15 profession code, label, [(TRE_R38 savoir-faire code, label)]).
PROFESSIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("10", "Médecin", (
        ("SM54", "Médecine générale"),
        ("SM04", "Cardiologie et maladies vasculaires"),
        ("SM41", "Pneumologie"),
        ("SM15", "Dermatologie et vénéréologie"),
        ("SM26", "Gynécologie-obstétrique"),
        ("SM40", "Pédiatrie"),
        ("SM42", "Psychiatrie"),
        ("SM38", "Ophtalmologie"),
        ("SM32", "Neurologie"),
        ("SM44", "Radio-diagnostic"),
    )),
    ("21", "Pharmacien", ()),
    ("40", "Chirurgien-Dentiste", (("SCD01", "Orthopédie dento-faciale"),)),
    ("50", "Sage-Femme", ()),
    ("60", "Infirmier", ()),
    ("70", "Masseur-Kinésithérapeute", ()),
)  # fmt: skip
#: Weights of the professions above (médecins and infirmiers are the most numerous).
WEIGHTS = (34, 10, 6, 3, 35, 12)

TOWNS = (
    ("Paris", "75"), ("Marseille", "13"), ("Lyon", "69"), ("Toulouse", "31"), ("Nice", "06"),
    ("Nantes", "44"), ("Strasbourg", "67"), ("Montpellier", "34"), ("Bordeaux", "33"),
    ("Lille", "59"), ("Rennes", "35"), ("Reims", "51"), ("Saint-Étienne", "42"),
    ("Le Havre", "76"), ("Toulon", "83"), ("Grenoble", "38"), ("Dijon", "21"),
    ("Angers", "49"), ("Nîmes", "30"), ("Villeurbanne", "69"), ("Clermont-Ferrand", "63"),
    ("Aix-en-Provence", "13"), ("Brest", "29"), ("Tours", "37"), ("Amiens", "80"),
    ("Limoges", "87"), ("Ajaccio", "2A"), ("Bastia", "2B"), ("Besançon", "25"),
    ("Orléans", "45"), ("Rouen", "76"), ("Caen", "14"), ("Metz", "57"), ("Perpignan", "66"),
    ("Pau", "64"), ("Poitiers", "86"), ("La Rochelle", "17"), ("Quimper", "29"),
    ("Colmar", "68"), ("Chambéry", "73"),
)  # fmt: skip
POSTCODES = {
    "Paris": [f"750{n:02d}" for n in range(1, 21)],
    "Marseille": [f"130{n:02d}" for n in range(1, 17)],
    "Lyon": [f"6900{n}" for n in range(1, 10)],
    "Ajaccio": ["20000", "20090"],
    "Bastia": ["20200", "20600"],
    "Nice": ["06000", "06100", "06200", "06300"],
    "Toulouse": ["31000", "31100", "31200", "31300", "31400", "31500"],
}
STREETS = (
    ("RUE", "de la République"), ("AV", "Jean Jaurès"), ("BD", "Victor Hugo"),
    ("RUE", "Pasteur"), ("PL", "de l'Église"), ("RUE", "du Général Leclerc"),
    ("AV", "des Tilleuls"), ("CHE", "des Vignes"), ("RUE", "Émile Zola"), ("QUAI", "de Saône"),
)  # fmt: skip
STREET_LABELS = {"RUE": "Rue", "AV": "Avenue", "BD": "Boulevard", "PL": "Place",
                 "CHE": "Chemin", "QUAI": "Quai"}  # fmt: skip
MSS_DOMAINS = ("medecin.mssante.fr", "pharmacien.mssante.fr", "infirmier.mssante.fr",
               "ch-{town}.mssante.fr", "{town}.mssante.fr")  # fmt: skip
SERVICES = ("Cardiologie", "Pneumologie", "Urgences", "Radiologie", "Secrétariat médical",
            "Laboratoire", "Pédiatrie", "Maternité")  # fmt: skip


def rpps(index: int) -> str:
    """The RPPS of synthetic practitioner ``index``: 10 digits and a Luhn check digit."""
    body = f"1{index:09d}"
    return body + luhn_digit(body)


class Person:
    __slots__ = ("civility", "family", "given", "index", "prof", "specialty")

    def __init__(self, index: int) -> None:
        h = (index * 2654435761) & 0xFFFFFFFF
        self.index = index
        self.family = FAMILY[h % len(FAMILY)]
        female = (h >> 8) & 1
        names = GIVEN_F if female else GIVEN_M
        self.given = names[(h >> 9) % len(names)]
        self.civility = "Madame" if female else "Monsieur"
        pick = (h >> 14) % sum(WEIGHTS)
        which = 0
        while pick >= WEIGHTS[which]:
            pick -= WEIGHTS[which]
            which += 1
        prof = PROFESSIONS[which]
        self.prof = prof
        specialties = prof[2]
        self.specialty = specialties[(h >> 20) % len(specialties)] if specialties else ("", "")
        if prof[0] == "10" and (h >> 24) % 3 == 0:
            self.specialty = specialties[0]  # about half of all médecins are généralistes

    @property
    def civility_title(self) -> str:
        return "Docteur" if self.prof[0] in ("10", "40") else self.civility


def _town(rng: random.Random) -> tuple[str, str]:
    name, dept = TOWNS[rng.randrange(len(TOWNS))]
    codes = POSTCODES.get(name)
    postcode = rng.choice(codes) if codes else f"{dept}000"
    return name, postcode


def _finess(n: int) -> str:
    return f"{n % 95 + 1:02d}{n:07d}"[:9]


def _siret(n: int) -> str:
    body = f"{n:013d}"
    return body + luhn_digit(body)


def ps_rows(rows: int, seed: int = 5) -> Iterator[str]:
    """``rows`` lines of PS_LibreAcces_Personne_activite after its header."""
    rng = random.Random(seed)
    n_hospitals = max(5, rows // 400)
    n_cabinets = max(10, rows // 3)
    person = 0
    written = 0
    while written < rows:
        p = Person(person)
        activities = 2 if rng.random() < 0.3 else 1
        for _ in range(min(activities, rows - written)):
            town, postcode = _town(rng)
            kind, street = STREETS[rng.randrange(len(STREETS))]
            if p.prof[0] == "21" or rng.random() < 0.35:
                h = rng.randrange(n_hospitals)
                finess, siret = _finess(h), ""
                name = f"CH de {town}" if p.prof[0] != "21" else f"Pharmacie {p.family} {town}"
                mode, role = "Salarié", "Praticien hospitalier" if p.prof[0] == "10" else ""
                tech = f"F{finess}"
            else:
                c = rng.randrange(n_cabinets)
                finess, siret = "", _siret(c)
                name = f"Cabinet {FAMILY[c % len(FAMILY)]}"
                mode, role, tech = "Libéral", "Titulaire de cabinet", f"R{c}"
            idnat = "8" + rpps(p.index)
            fields = {
                "Type d'identifiant PP": "8",
                "Identifiant PP": idnat[1:],
                "Identification nationale PP": idnat,
                "Code civilité d'exercice": "DR" if p.civility_title == "Docteur" else "",
                "Libellé civilité d'exercice": p.civility_title,
                "Code civilité": "MME" if p.civility == "Madame" else "M",
                "Libellé civilité": p.civility,
                "Nom d'exercice": p.family.upper(),
                "Prénom d'exercice": p.given,
                "Code profession": p.prof[0],
                "Libellé profession": p.prof[1],
                "Code catégorie professionnelle": "C",
                "Libellé catégorie professionnelle": "Civil",
                "Code type savoir-faire": "S" if p.specialty[0] else "",
                "Libellé type savoir-faire": "Spécialité ordinale" if p.specialty[0] else "",
                "Code savoir-faire": p.specialty[0],
                "Libellé savoir-faire": p.specialty[1],
                "Code mode exercice": mode[0],
                "Libellé mode exercice": mode,
                "Numéro SIRET site": siret,
                "Numéro SIREN site": siret[:9],
                "Numéro FINESS site": finess,
                "Identifiant technique de la structure": tech,
                "Raison sociale site": name,
                "Numéro Voie (coord. structure)": str(rng.randrange(1, 200)),
                "Code type de voie (coord. structure)": kind,
                "Libellé type de voie (coord. structure)": STREET_LABELS[kind],
                "Libellé Voie (coord. structure)": street,
                "Code postal (coord. structure)": postcode,
                "Libellé commune (coord. structure)": town.upper(),
                "Code pays (coord. structure)": "99000",
                "Libellé pays (coord. structure)": "France",
                "Code Département (structure)": postcode[:2],
                "Autorité d'enregistrement": "CNOM/CNOM/CNOM" if p.prof[0] == "10" else "ARS",
                "Libellé rôle": role,
            }
            yield "|".join(fields.get(h, "") for h in PS_HEADER) + "|\n"
            written += 1
        person += 1


def ps_people(rows: int) -> int:
    """About how many practitioners ``ps_rows(rows)`` describes (1.3 lines each)."""
    return max(1, int(rows / 1.3))


def mss_rows(rows: int, seed: int = 7, people: int | None = None) -> Iterator[str]:
    """``rows`` lines of Extraction_Correspondance_MSSante after its header: 85 % PER
    mailboxes of practitioners 0 … ``people`` − 1, the rest ORG; about 1 in 3,000 lines
    repeats an address (the published file has such duplicates)."""
    rng = random.Random(seed)
    people = people or max(1, rows)
    last = ""
    for n in range(rows):
        if last and rng.random() < 1 / 3000:
            yield last
            continue
        town, postcode = _town(rng)
        kind, street = STREETS[rng.randrange(len(STREETS))]
        slug = squash(town)
        routing = f"{postcode} {town.upper()}"
        base = {
            "Numéro Voie structure BAL": str(rng.randrange(1, 200)),
            "Type de voie structure BAL": kind,
            "Libellé Voie structure BAL": street,
            "Ligne d'acheminement structure BAL": routing,
            "Code postal": postcode,
            "Département": postcode[:2],
            "Pays": "France",
            "Dématérialisation": "O" if rng.random() < 0.5 else "N",
        }
        if rng.random() < 0.85:
            p = Person((n * 7919) % people)
            domain = MSS_DOMAINS[rng.randrange(len(MSS_DOMAINS))].format(town=slug)
            local = f"{squash(p.given)}.{squash(p.family)}"
            idnat = "8" + rpps(p.index)
            fields = {
                **base,
                "Type de BAL": "PER",
                "Adresse BAL": f"{local}{n}@{domain}",
                "Type Identifiant PP": "8",
                "Identifiant PP": idnat[1:],
                "Identification nationale PP": idnat,
                "Civilité d'exercice": p.civility_title,
                "Nom d'exercice": p.family.upper(),
                "Prénom d'exercice": p.given,
                "Catégorie profession": "C",
                "Libellé de catégorie profession": "Civil",
                "Code Profession": p.prof[0],
                "Libellé Profession": p.prof[1],
                "Code savoir-faire": p.specialty[0],
                "Libellé savoir-faire": p.specialty[1],
                "Raison Sociale structure BAL": f"Cabinet {p.family}",
            }
        else:
            service = SERVICES[rng.randrange(len(SERVICES))]
            h = rng.randrange(max(5, rows // 100))
            fields = {
                **base,
                "Type de BAL": "ORG",
                "Adresse BAL": f"{squash(service)}.{h}@ch-{slug}.mssante.fr",
                "Type identifiant structure": "1",
                "Identification Structure": _finess(h),
                "Service de rattachement": service,
                "Raison Sociale structure BAL": f"CH de {town}",
            }
        last = "|".join(fields.get(h, "") for h in MSS_HEADER) + "|\n"
        yield last


def write(kind: str, rows: int, out: IO[str], seed: int | None = None) -> None:
    if kind == PS_LIBREACCES:
        out.write("|".join(PS_HEADER) + "|\n")
        lines = ps_rows(rows, seed if seed is not None else 5)
    elif kind == MSSANTE:
        out.write("|".join(MSS_HEADER) + "|\n")
        lines = mss_rows(rows, seed if seed is not None else 7)
    else:
        raise ValueError(f"unknown kind {kind!r} (ps-libreacces, mssante)")
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= 10_000:
            out.write("".join(chunk))
            chunk.clear()
    out.write("".join(chunk))
