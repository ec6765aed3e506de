"""Structure decides the label: a table's header, a key, a block's label line, a format's field.

Every case here is written by hand from the format's documentation (RFC 4180 CSV, GitHub
Markdown tables, psql's aligned output, pandas' print, MySQL INSERT, PostgreSQL COPY, vCard
RFC 6350, LDIF RFC 2849, HL7 v2.5 PID, ISO 20022 pain.001, SWIFT MT103, FHIR Patient), with
values made up for it; none comes from the evaluation corpora.
"""

from __future__ import annotations

import pytest

from mcp_guard.masking import detect
from mcp_guard.masking.detect import FAST_FROM


def found(text: str) -> set[tuple[str, str]]:
    return {(s.label, text[s.start : s.end]) for s in detect(text)}


COLUMNS = [
    ("csv", "id,full_name,ssn,city\n7,Ilse Vandermeer,219099999,Ghent\n", "PERSON", "Ilse Vandermeer"),
    ("csv", "id,full_name,ssn,city\n7,Ilse Vandermeer,219099999,Ghent\n", "US_SSN", "219099999"),
    ("csv", "id,full_name,ssn,city\n7,Ilse Vandermeer,219099999,Ghent\n", "LOCATION", "Ghent"),
    ("csv quoted", '"Name","Street","City"\n"Bo Lindahl","Storgatan 4","Umeå"\n', "LOCATION", "Storgatan 4"),
    ("csv phone", "customer,phone\nKofi Mensah,55 2284 1190\n", "PHONE", "55 2284 1190"),
    ("csv comma in a later cell", "employee,ssn,hired\nAda Ferreira,318220456,March 3, 2020\n", "US_SSN", "318220456"),
    ("tsv", "name\tmobile\nRuth Abebe\t(03) 5550 7781\n", "PHONE", "(03) 5550 7781"),
    ("markdown", "| Name | SSN |\n|------|-----|\n| Tomas Ruiz | 427118305 |\n", "US_SSN", "427118305"),
    ("markdown", "| Name | SSN |\n|------|-----|\n| Tomas Ruiz | 427118305 |\n", "PERSON", "Tomas Ruiz"),
    ("psql", " id | name | town\n----+------+------\n  1 | Hana Kim | Busan\n(1 row)\n", "LOCATION", "Busan"),
    ("dataframe", "        name          phone\n0  Lea Novak  01 23 45 67 89\n", "PERSON", "Lea Novak"),
    ("insert", "INSERT INTO `people` (`id`, `name`, `tel`) VALUES\n(3, 'Ines Moura', '21 555 0199');", "PHONE",
     "21 555 0199"),
    ("copy", "COPY staff (id, surname, ssn) FROM stdin;\n4\tOkafor\t501229876\n\\.\n", "US_SSN", "501229876"),
]


@pytest.mark.parametrize(("shape", "text", "label", "value"), COLUMNS, ids=[f"{c[0]}-{c[2]}" for c in COLUMNS])
def test_a_column_header_labels_every_cell_under_it(shape: str, text: str, label: str, value: str) -> None:
    assert (label, value) in found(text)


def test_a_table_row_far_below_its_header_is_labelled_through_the_pre_pass() -> None:
    rows = "".join(f"{i},tool_{i},ok\n" for i in range(400))
    text = "id,full_name,ssn\n" + rows.replace("tool_", "x").replace(",ok", ",-") + "401,Mira Halvorsen,318220456\n"
    assert len(text) > 4 * FAST_FROM
    assert {("PERSON", "Mira Halvorsen"), ("US_SSN", "318220456")} <= found(text)
    assert detect(text) == detect(text, prefilter=False)


TABLES_LEFT_ALONE = [
    "id,name,size\n1,README.md,120\n2,setup.py,88\n",
    "| name | type | required |\n|---|---|---|\n| read_file | tool | yes |\n",
    "name,phone\nbuild,12\n",
    "INSERT INTO tools (id, name) VALUES (1, 'read_file'), (2, 'write_file');",
    "ssn,count\n000000000,3\n",
]


@pytest.mark.parametrize("text", TABLES_LEFT_ALONE)
def test_cells_that_do_not_look_like_their_header_are_left_alone(text: str) -> None:
    assert found(text) == set()


KEYED = [
    ('{"address":{"line1":"Kongens Gate 12","city":"Trondheim"}}', "LOCATION", "Kongens Gate 12"),
    ("Home address: 9 Rua Nova, Braga\nPhone: none", "LOCATION", "9 Rua Nova, Braga"),
    ("Employee: Sade Okoro        Grade: 7", "PERSON", "Sade Okoro"),
    ('{"name":[{"family":"Haraldsen","given":["Tove"]}]}', "PERSON", "Haraldsen"),
    ('{"name":[{"family":"Haraldsen","given":["Tove"]}]}', "PERSON", "Tove"),
    ('{"name":{"S":"Yara Haddad"}}', "PERSON", "Yara Haddad"),
    ('payment card=**** holder="Ivo Petrov" amount=12', "PERSON", "Ivo Petrov"),
    ('{"real_name":"Noa Levi"}', "PERSON", "Noa Levi"),
    ('[maintainer]\nname = "Kenji Sato"\n', "PERSON", "Kenji Sato"),
    ('{"ship_to":"Via Roma 3, Torino"}', "LOCATION", "Via Roma 3, Torino"),
]


@pytest.mark.parametrize(("text", "label", "value"), KEYED)
def test_a_key_gives_its_value_the_label(text: str, label: str, value: str) -> None:
    assert (label, value) in found(text)


@pytest.mark.parametrize("text", ['    name = "Pango Markup"', "line: 12", "username: jdoe", "    location = self.loc"])
def test_code_under_a_name_key_is_not_a_name(text: str) -> None:
    assert found(text) == set()


LAYOUT = [
    ("Bill to:\nAmara Diallo\nKastanienallee 7\n10435 Berlin\n\nTotal 12.00", "PERSON", "Amara Diallo"),
    ("Bill to:\nAmara Diallo\nKastanienallee 7\n10435 Berlin\n\nTotal 12.00", "LOCATION", "10435 Berlin"),
    ("SHIP TO:\nJoon Park\n14 Harbour Road\nTel 555 0100", "LOCATION", "14 Harbour Road"),
    (":50K:/GB29NWBK60161331926819\nElin Berg\nDrottninggatan 5\n:59:/X", "PERSON", "Elin Berg"),
    ("Thanks for the quick fix.\n\nKind regards,\nMateus Rocha\n", "PERSON", "Mateus Rocha"),
    ("[10:02] Ayla: deploy is green\n[10:03] Bram: ok", "PERSON", "Ayla"),
    ("[02/03/2025, 18:01:09] Zoe Adler: see you", "PERSON", "Zoe Adler"),
    ("<Cdtr><Nm>Pia Lund</Nm><PstlAdr><TwnNm>Odense</TwnNm></PstlAdr></Cdtr>", "LOCATION", "Odense"),
    ("<Customer><FullName>Omar Nasser</FullName></Customer>", "PERSON", "Omar Nasser"),
    ("MSH|^~\\&|A|B\nPID|1||991^^^H^MR||Quispe^Rosa||19790214|F|||Av. Sol 120^^Cusco||", "PERSON", "Quispe^Rosa"),
    ("MSH|^~\\&|A|B\nPID|1||991^^^H^MR||Quispe^Rosa||19790214|F|||Av. Sol 120^^Cusco||", "DATE", "19790214"),
    ("dn: cn=Femi Adeyinka,ou=People,dc=example,dc=org\nl: Ibadan\n", "LOCATION", "Ibadan"),
    ("dn: cn=Femi Adeyinka,ou=People,dc=example,dc=org\nl: Ibadan\n", "PERSON", "Femi Adeyinka"),
    ("SURNAME / APELLIDOS  Mendoza\nPLACE OF BIRTH  Quito", "LOCATION", "Quito"),
    ('MANAGERS = [("Greta Holm", "greta@example.org")]', "PERSON", "Greta Holm"),
    ("BEGIN:VCARD\nBDAY:19880412\nEND:VCARD", "DATE", "19880412"),
]


@pytest.mark.parametrize(("text", "label", "value"), LAYOUT)
def test_a_documents_layout_labels_names_and_places(text: str, label: str, value: str) -> None:
    assert (label, value) in found(text)


LAYOUT_LEFT_ALONE = [
    "Bill to:\nsee the attached order\n",
    "[2025-04-11 08:00:01] INFO: worker started",
    "[3/7] compiling: ok",
    "<name>read_file</name>",
    "Thanks,\nthe team",
    "PID|1|||",
    "BDAY:19881340",
]


@pytest.mark.parametrize("text", LAYOUT_LEFT_ALONE)
def test_layout_without_a_name_or_place_in_it_finds_nothing(text: str) -> None:
    assert found(text) == set()


NUMBERS = [
    ("she called from 8 (812) 555-01-02 twice", "PHONE", "8 (812) 555-01-02"),
    ('{"telecom":[{"system":"phone","value":"(07) 3555 0147"}]}', "PHONE", "(07) 3555 0147"),
    ("ring 08-123 456 78 after six", "PHONE", "08-123 456 78"),
    ("whatsapp 91 234 5678 when done", "PHONE", "91 234 5678"),
    ("paid with 6759 6498 2648 yesterday", "CREDIT_CARD", "6759 6498 2648"),
]


@pytest.mark.parametrize(("text", "label", "value"), NUMBERS)
def test_national_phones_and_short_maestro_cards_are_found(text: str, label: str, value: str) -> None:
    assert (label, value) in found(text)


@pytest.mark.parametrize("text", ["call 3 times", "callback(1234567)", "ts 675964982648", "order 6759-6498-2641"])
def test_numbers_that_are_no_phone_or_card_are_left_alone(text: str) -> None:
    assert found(text) == set()


def test_a_url_in_a_csv_cell_ends_at_the_cells_comma() -> None:
    text = "title,url,login\nBank,https://bank.example/login,ana@example.org\n"
    assert ("URL", "https://bank.example/login") in found(text)
    assert ("EMAIL", "ana@example.org") in found(text)


HEADERS = ["Full Name", "first_name", "Surname", "cardholder", "Account Holder", "Customer", "Home Address",
           "Address Line 1", "Street", "City", "Country", "Province", "Place of Birth", "birthplace", "Ship To",
           "Phone No", "Telephone", "Mobile", "MSISDN", "SSN", "Social Security Number", "soc_sec_no", "Fax", "Cell"]


@pytest.mark.parametrize("header", HEADERS)
def test_every_header_a_column_is_known_by_holds_a_word_the_pre_pass_looks_for(header: str) -> None:
    """The pre-pass starts the table detector only where it saw one of these words."""
    from mcp_guard.masking.detectors import tables

    assert tables._column(header) is not None
    assert tables._HEADER_WORD.search(header.lower()) is not None


def test_a_long_text_of_tables_and_records_gives_the_same_spans_with_and_without_the_pre_pass() -> None:
    table = "name,phone,city\nAda Ferreira,55 2284 1190,Braga\n\n"
    noise = '{"id": 12, "filename": "replace.py", "namespace": "hotel"}\n' * 30
    text = (noise + table) * 20
    assert len(text) > 8 * FAST_FROM
    spans = detect(text)
    assert spans == detect(text, prefilter=False)
    assert sum(s.label == "PHONE" for s in spans) == 20


def test_a_random_key_in_a_urls_path_is_a_secret_and_a_docs_link_stays_readable() -> None:
    key = "Zq7" + "Lw2xP9mKt4RvB8nYc3Hd"  # built here: the file holds no key
    assert ("SECRET", key) in found(f"shared: https://files.example/s/{key}?dl=1")
    for link in ("https://github.com/encode/httpx/blob/3f2a9c1d7e4b5a6f8c9d0e1f2a3b4c5d6e7f8a9b/README.md",
                 "https://docs.pydantic.dev/latest/concepts/pydantic_settings/",
                 "https://example.com/items/550e8400-e29b-41d4-a716-446655440000"):
        assert {label for label, _ in found(link)} == {"URL"}
