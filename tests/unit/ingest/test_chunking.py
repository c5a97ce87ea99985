"""Chunks: token-bounded, never across pages, with the section title and metadata of their text."""

from __future__ import annotations

import itertools

from ragstream.chunking import chunk_elements, document_title, embedded_text
from ragstream.embeddings import count_tokens
from ragstream.model import Chunk, Element

PARA = (
    "Every full-time employee receives twenty-five days of paid annual leave per calendar year, "
    "in addition to public holidays, and up to five unused days may be carried over. "
)


def test_chunks_stay_within_the_token_budget_and_keep_pages() -> None:
    # GIVEN a two-page document with a long section on page 1
    elements = [
        Element(text="Leave policy", type="Title", page=1),
        Element(text=PARA * 12, page=1, title="Leave policy"),
        Element(text="Sick leave", type="Title", page=2, title="Leave policy"),
        Element(text="Sick leave is not limited in days.", page=2, title="Sick leave"),
    ]
    # WHEN it is chunked at 64 tokens with 8 of overlap
    chunks = chunk_elements(elements, chunk_size=64, chunk_overlap=8, length=count_tokens)
    # THEN every chunk fits, indexes are dense, and pages and titles follow the text
    assert all(count_tokens(c.text) <= 64 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    page1 = [c for c in chunks if c.page == 1]
    page2 = [c for c in chunks if c.page == 2]
    assert len(page1) >= 5 and page2
    assert all(c.title == "Leave policy" for c in page1)
    assert page2[-1].title == "Sick leave"
    assert "Sick leave is not limited" in page2[-1].text
    assert not any("Sick leave is not limited" in c.text for c in page1)


def test_a_heading_alone_is_folded_into_the_chunks_that_follow_it() -> None:
    elements = [
        Element(text="Parental leave", type="Title"),
        Element(text=PARA * 6, title="Parental leave"),
    ]
    chunks = chunk_elements(elements, chunk_size=48, chunk_overlap=0, length=count_tokens)
    assert all(c.text != "Parental leave" for c in chunks)
    assert {c.title for c in chunks} == {"Parental leave"}


def test_short_elements_share_a_chunk_and_carry_their_metadata() -> None:
    elements = [
        Element(
            text=f"Item {i}: expenses above 25 EUR need a receipt.",
            type="ListItem",
            metadata={"subject": "Expenses"},
        )
        for i in range(5)
    ]
    chunks = chunk_elements(elements, chunk_size=200, chunk_overlap=20, length=count_tokens)
    assert len(chunks) == 1
    assert chunks[0].text.count("Item") == 5
    assert chunks[0].metadata == {"subject": "Expenses"}
    assert chunks[0].page is None


def test_overlap_repeats_text_between_neighbours() -> None:
    words = " ".join(f"w{i}" for i in range(400))
    chunks = chunk_elements([Element(text=words)], chunk_size=60, chunk_overlap=20, length=count_tokens)
    assert len(chunks) > 3
    for a, b in itertools.pairwise(chunks):
        assert a.text.split()[-1] in b.text.split()


def test_blank_elements_make_no_chunks() -> None:
    assert (
        chunk_elements(
            [Element(text="  \n "), Element(text="")], chunk_size=50, chunk_overlap=5, length=count_tokens
        )
        == []
    )


# -- document context in the embedded text ---------------------------------------------------------------


def test_a_document_is_named_by_its_title_else_its_opening_heading_else_its_file_name() -> None:
    heading = [Element(text="Acme Corp  Quarterly Report Q2", type="Title", page=1), Element(text=PARA)]
    assert (
        document_title("x/report.pdf", {"pdf_title": "Annual Report 2024"}, heading) == "Annual Report 2024"
    )
    assert document_title("mail.eml", {"subject": "Budget for Q3"}, []) == "Budget for Q3"
    assert document_title("x/report.md", {}, heading) == "Acme Corp Quarterly Report Q2"
    body = [Element(text=PARA), Element(text="Later", type="Title")]  # a heading that does not open it
    assert document_title("reports/acme_10-Q_2024.q2.pdf", {}, body) == "acme 10 Q 2024 q2"
    assert document_title("scifact/4983.txt", {}, body) is None  # a number names nothing
    assert len(document_title("a.pdf", {"pdf_title": "word " * 100}, []) or "") <= 160


def test_the_embedded_text_carries_title_section_and_page_as_asked() -> None:
    chunk = Chunk(text="Net revenue was $12 million.", index=3, page=4, title="Results of Operations")
    title = "Acme Corp Quarterly Report Q2"
    assert embedded_text(chunk, title, ()) == chunk.text
    assert embedded_text(chunk, title, {"title"}) == f"{title}\n\n{chunk.text}"
    assert embedded_text(chunk, title, {"title", "section"}) == (
        f"{title} › Results of Operations\n\n{chunk.text}"
    )
    assert embedded_text(chunk, title, {"title", "section", "page"}).startswith(
        f"{title} › Results of Operations › page 4\n\n"
    )
    assert embedded_text(chunk, None, {"title", "section"}) == f"Results of Operations\n\n{chunk.text}"
    # what the chunk says already is not said twice
    opening = Chunk(text=f"{title}\n\nOverview of the quarter.", index=0, page=1, title=title)
    assert embedded_text(opening, title, {"title", "section"}) == opening.text


def test_the_section_is_the_path_of_headings_the_chunk_lies_under() -> None:
    # GIVEN a chunk three headings deep, the outermost being the document's title
    title = "Harbor Report"
    chunk = Chunk(
        text="The facility is 50 million.",
        index=5,
        title="Credit facility",
        headings=[title, "Liquidity", "Credit facility"],
    )
    # THEN its context is the title, then the path below it (the title not said twice)
    assert embedded_text(chunk, title, {"title", "section"}) == (
        f"{title} › Liquidity › Credit facility\n\n{chunk.text}"
    )
    # AND a chunk that opens with its own heading keeps the headings above it
    opening = Chunk(text="Credit facility\n\nThe facility is 50 million.", index=4, headings=chunk.headings)
    assert embedded_text(opening, title, {"section"}) == f"Liquidity\n\n{opening.text}"
