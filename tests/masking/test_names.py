"""PERSON and LOCATION from structure alone: a key, a header, a format's field or a layout
says what a value is. Every case is written by hand from the format's documentation (RFC 5322
mail headers, RFC 6350 vCard, RFC 5545 iCalendar, RFC 4514 DNs, RFC 1866 form bodies, git's
log, blame and trailers, CSV and Markdown tables), with made-up values; none comes from the
evaluation corpora."""

from __future__ import annotations

import pytest

from mcp_guard.masking import detect


def named(text: str) -> set[tuple[str, str]]:
    return {(s.label, text[s.start : s.end]) for s in detect(text) if s.label in ("PERSON", "LOCATION")}


def test_a_vcard_full_name_is_a_person() -> None:
    card = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN;CHARSET=UTF-8:Jürgen Weiß\r\nEND:VCARD\r\n"
    assert ("PERSON", "Jürgen Weiß") in named(card)


def test_a_vcard_address_in_a_group_is_a_location_read_by_its_components() -> None:
    card = "item1.ADR;TYPE=HOME:;;100 Waters Edge;Baytown;LA;30314;United States of America\n"
    assert ("LOCATION", "100 Waters Edge;Baytown;LA;30314;United States of America") in named(card)


def test_an_icalendar_location_after_a_quoted_parameter_is_a_location() -> None:
    event = 'LOCATION;ALTREP="http://rooms.example/f123.vcf":Conference Room - F123\\, Bldg. 002\n'
    assert ("LOCATION", "Conference Room - F123\\, Bldg. 002") in named(event)


def test_a_quoted_common_name_with_a_comma_is_a_person() -> None:
    assert ("PERSON", "Doe, John") in named('ATTENDEE;CUTYPE=INDIVIDUAL;CN="Doe, John":mailto:jd')


def test_an_ldap_dn_gives_its_escaped_common_name_and_its_locality() -> None:
    assert ("PERSON", "Doe\\, Jane") in named("CN=Doe\\, Jane,OU=Users,DC=corp,DC=example")
    assert ("LOCATION", "Leeds") in named("subject=CN=web01,O=Example Ltd,L=Leeds,C=GB")


MAIL = [
    ("every mailbox of a list", "Cc: Mary Smith <mary@x.test>, Pete Yu <pete@y.test>", "Pete Yu"),
    ("a name in a comment after the address", "From: jdoe@example.org (John Doe)", "John Doe"),
    ("a lowercase header", "from: Anika Roy <anika@x.in>", "Anika Roy"),
    ("a header quoted in a reply", "> From: Tobias Lund <tobias@x.se>\n> Sent: Monday", "Tobias Lund"),
    ("a forwarded message's pasted block", "From: Tobias Lund\nSent: Monday, 3 March 2025\nTo: Ingrid Sol; Bo Ek\n",
     "Bo Ek"),
    ("a reply's attribution line", "On Mon, 3 Mar 2025 at 09:14, Tobias Lund <tobias@x.se> wrote:", "Tobias Lund"),
    ("a letter's greeting", "Dear Ravi Shankar,\n\nplease find attached", "Ravi Shankar"),
    ("git's committer line", "Author:     Grace Hopper <grace@x.mil>\nCommit:     Ada Byron <ada@x.uk>\n", "Ada Byron"),
    ("a git trailer", "    Co-authored-by: Kari Nordmann <kari@x.no>", "Kari Nordmann"),
    ("git blame's author column", "a1b2c3d4 (Kari Nordmann 2025-03-01 12:00:00 +0100 12) return x", "Kari Nordmann"),
]


@pytest.mark.parametrize(("shape", "text", "name"), MAIL, ids=[m[0] for m in MAIL])
def test_a_message_or_commit_header_names_a_person(shape: str, text: str, name: str) -> None:
    assert ("PERSON", name) in named(text)


def test_the_author_after_padding_is_labelled_without_the_padding() -> None:
    assert named("Author:     Grace Hopper\n") == {("PERSON", "Grace Hopper")}


KEYS = [
    ('{"nickname": "Maja Berg", "hometown": "Kraków"}', "PERSON", "Maja Berg"),
    ('{"nickname": "Maja Berg", "hometown": "Kraków"}', "LOCATION", "Kraków"),
    ('{"streetAddress": "21 2nd Street", "locality": "New York"}', "LOCATION", "New York"),
    ('{"address1": "12 Rue Oberkampf", "street_line_2": "Apt 3"}', "LOCATION", "12 Rue Oberkampf"),
    ('{"name_on_card": "OLU BELLO"}', "PERSON", "OLU BELLO"),
    ("Patient: SHANKAR, Ravi\n", "PERSON", "SHANKAR, Ravi"),
    ("Prepared by: Ines Duarte\n", "PERSON", "Ines Duarte"),
    ("Deliver to: Zara Ali, 221B Baker Street, London", "PERSON", "Zara Ali"),
    ("Deliver to: Zara Ali, 221B Baker Street, London", "LOCATION", "221B Baker Street, London"),
    ('2025-03-01T12:00:00Z INFO signup name="Dara Kelly" ip=10.0.0.1', "PERSON", "Dara Kelly"),
    ("level=info msg=signup name=Dara city=Galway", "LOCATION", "Galway"),
    ("first_name=Dara&last_name=Kelly&city=Galway", "PERSON", "Kelly"),
    ("POST /signup HTTP/1.1\n\nfull_name=Dara+Kelly&address=3%20Shop%20St", "LOCATION", "3%20Shop%20St"),
]


@pytest.mark.parametrize(("text", "label", "value"), KEYS)
def test_a_key_log_pair_or_form_field_labels_its_value(text: str, label: str, value: str) -> None:
    assert (label, value) in named(text)


LAYOUT = [
    ("| Author | Commits |\n|---|---|\n| Zara Ali | 12 |\n", "PERSON", "Zara Ali"),
    ("id;nom;ville\n1;Zara Ali;Lyon\n", "LOCATION", "Lyon"),
    ("<dc:creator>Nadia Haddad</dc:creator>", "PERSON", "Nadia Haddad"),
    ("<Country>Lebanon</Country>", "LOCATION", "Lebanon"),
    ("Mailing address\n221B Baker Street\nLondon NW1 6XE\n", "LOCATION", "London NW1 6XE"),
    ("Best regards,\n\nRavi Shankar\n", "PERSON", "Ravi Shankar"),
    ("-- \nRavi Shankar | Acme Ltd\n", "PERSON", "Ravi Shankar"),
]


@pytest.mark.parametrize(("text", "label", "value"), LAYOUT)
def test_a_header_element_or_block_labels_what_is_under_it(text: str, label: str, value: str) -> None:
    assert (label, value) in named(text)


LOOK_ALIKES = [
    '{"name": "read_file", "description": "Reads a file"}',
    '{"name": "Build Docker Image"}',
    "    city = get_city()",
    "state: Running",
    "Name,Version\nrequests,2.31.0\nurllib3,2.0.4\n",
    "| Owner | Description |\n|---|---|\n| Platform Team | runs infra |\n",
    "# From: Tobias Lund\nx = 1\n",
    "// From: the original implementation\n",
    "From: Mail Delivery System <MAILER-DAEMON>",
    "Author: dependabot[bot] <support>",
    "To: Undisclosed Recipients <>",
    'logger.info("user name=%s city=%s", name, city)',
    'resp = client.get("/search?name={name}&city={city}")',
    "docker run --name=Web --restart=always nginx",
    "Hi There,\nwelcome aboard",
    "Dear Customer,\n",
    "Hello World!\n",
    "Regards,\nThe Team",
    "Address\n0x7ffd5e8c\n",
    "--\nSELECT Name FROM users;",
    "ATTENDEE;CN=Conference Room:mailto:room",
    "cn=admin,dc=example,dc=com",
    'params = {"name": "Primary Key", "city": None}',
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_code_tools_and_teams_under_name_like_structure_are_not_people_or_places(text: str) -> None:
    assert named(text) == set()


MORE = [
    ('{"params": [{"name": "first_name", "value": "Dara"}, {"name": "city", "value": "Galway"}]}', "LOCATION",
     "Galway"),
    ('{"Tags": [{"Key": "Owner", "Value": "Ines Duarte"}]}', "PERSON", "Ines Duarte"),
    ('{"author": {"username": "dkelly", "global_name": "Dara Kelly"}}', "PERSON", "Dara Kelly"),
    ("Referring physician: Dr. Amara Diallo\n", "PERSON", "Dr. Amara Diallo"),
    ("[10:02] <Henrik> deploy done", "PERSON", "Henrik"),
    ("03/02/2025, 18:01 - Zoe Adler: see you at six", "PERSON", "Zoe Adler"),
    ("FROM:\nJoon Park\n14 Harbour Road\n", "PERSON", "Joon Park"),
]


@pytest.mark.parametrize(("text", "label", "value"), MORE)
def test_name_value_objects_chat_lines_and_label_blocks_name_people_and_places(
    text: str, label: str, value: str
) -> None:
    assert (label, value) in named(text)


def test_a_name_value_object_naming_a_header_is_not_a_person() -> None:
    assert named('{"name": "Content-Type", "value": "Text Html"}') == set()
