"""The BM25 encoder of hybrid retrieval: terms, ids, document and query weights."""

from __future__ import annotations

import math
import subprocess
import sys

from ragstream.lexical import AVG_LEN, K1, B, encode_document, encode_query, term_id, terms


def test_terms_are_lowercased_stemmed_words_without_stop_words() -> None:
    assert terms("The Revenues of the Company") == ["revenu", "company"]
    assert terms("revenue") == terms("revenues") == ["revenu"]
    assert terms("licensing") == terms("licensed")
    assert terms("companies") == terms("company")
    assert terms("Umsätze für Köln") == ["umsätz", "für", "köln"]  # any script's letters


def test_a_code_is_its_pieces_and_its_joined_form() -> None:
    assert terms("invoice INV-1234") == ["invoic", "inv", "1234", "inv1234"]
    assert set(terms("inv1234")) <= set(terms("INV-1234"))  # typed without its dash, it still meets


def test_document_weights_are_bm25_term_frequency_saturated_and_length_normalised() -> None:
    indices, values = encode_document("zebra zebra lion")
    assert indices == sorted(indices) and len(set(indices)) == 2
    norm = K1 * (1 - B + B * 3 / AVG_LEN)
    weights = dict(zip(indices, values, strict=True))
    assert math.isclose(weights[term_id("zebra")], 2 * (K1 + 1) / (2 + norm), rel_tol=1e-4)
    assert math.isclose(weights[term_id("lion")], 1 * (K1 + 1) / (1 + norm), rel_tol=1e-4)
    # a longer chunk weighs the same term frequency less
    long_indices, long_values = encode_document("zebra " + "lion " * 300)
    assert dict(zip(long_indices, long_values, strict=True))[term_id("zebra")] < weights[term_id("lion")]


def test_a_query_weighs_each_distinct_term_once() -> None:
    indices, values = encode_query("zebra zebra, the lion?")
    assert sorted(indices) == indices == sorted({term_id("zebra"), term_id("lion")})
    assert values == [1.0, 1.0]
    assert encode_query("the of and") == ([], [])


def test_ids_are_stable_31_bit_numbers_across_processes() -> None:
    # the query image and the ingest image must agree: no per-process hash seed
    here = term_id("revenu")
    there = subprocess.run(
        [sys.executable, "-c", "from ragstream.lexical import term_id; print(term_id('revenu'))"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert str(here) == there and 0 <= here < 2**31


def test_the_encoder_imports_nothing_beyond_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import ragstream.lexical; "
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('ragstream')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)  # a printed list of module names
    assert not [m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names], loaded
