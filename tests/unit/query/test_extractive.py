"""The offline answerer's reading of questions and chunks: key terms, sentences, coverage."""

from __future__ import annotations

from ragstream.extractive import Terms, coverage, key_terms, normalise, segments, stem


def test_key_terms_sort_numbers_names_words_and_the_asked_word() -> None:
    terms = key_terms("Which colours did Acme Robotics sell in the third quarter of 2024?")
    assert terms.numbers == ("q3", "2024")  # "third quarter" is one term, compared like a number
    assert terms.names == (("acm", "robotic"),)  # stems: "Acme" and "acme" meet at "acm"
    assert terms.words == ("sell",)
    assert terms.asked == ("colour",)


def test_question_words_and_answer_types_are_not_key_terms() -> None:
    terms = key_terms("How many days of leave do employees get?")
    assert terms == Terms(numbers=(), names=(), words=("day", "leav", "employe"))
    assert not key_terms("What is it?")


def test_normalise_reads_quarters_and_halves_as_codes() -> None:
    assert normalise("the Third Quarter and the first half") == "the Q3 and the H1"
    assert normalise("Q2 2024") == "Q2 2024"


def test_stem_meets_inflections_and_irregular_verbs() -> None:
    assert stem("deliveries") == stem("delivery")
    assert stem("flies") == stem("fly")
    assert stem("employed") == stem("employ")
    assert stem("won") == stem("win")
    assert stem("1,240") == "1240"
    assert stem("Roberts'") == stem("Roberts")


def test_segments_mark_headings_and_join_lines_broken_inside_a_sentence() -> None:
    text = (
        "Results\n\nRevenue was 4.2 million EUR. Costs fell.[3] The board met.\n\n"
        "He won a total\n\nof 15 caps for his\n\nWales team."
    )
    assert segments(text) == [
        ("Results", True),
        ("Revenue was 4.2 million EUR.", False),
        ("Costs fell.[3]", False),
        ("The board met.", False),
        ("He won a total of 15 caps for his Wales team.", False),
    ]


def test_coverage_needs_every_number_and_name_and_most_words() -> None:
    terms = key_terms("What was Borealis' revenue from oat drinks in Q3 2024?")
    sentence = {"revenue", "oat", "drink", "q3", "2024"}
    assert coverage(terms, sentence, set(), {"borealis"}) == 1.0
    # the year only in the document's name still counts; a year nowhere does not
    assert coverage(terms, sentence - {"2024"}, {"2024"}, {"borealis"}) == 1.0
    assert coverage(terms, sentence - {"2024"}, set(), {"borealis", "2024"}) == -1.0
    # a name missing from the whole document fails, whatever the sentence holds
    assert coverage(terms, sentence, set(), set()) == -1.0
    # one content word of three missing
    assert coverage(terms, sentence - {"oat"}, set(), {"borealis"}) == 2 / 3


def test_a_sentence_must_hold_a_word_of_the_question_itself() -> None:
    """The document's name alone does not make each of its sentences about the question."""
    terms = key_terms("What caused the ledger outage?")
    assert terms.words == ("caus", "ledger", "outag") and terms.asked == ()  # "what caused": a verb
    context = {"postmortem", "ledger", "outag"}  # postmortem-ledger-outage.txt
    assert coverage(terms, {"write", "succeed", "again"}, context, set()) == -1.0
    assert coverage(terms, {"deploy", "identify", "caus"}, context, set()) == 1.0
