"""Very large PDFs, made cheaply: every scanned page shares one 1x1 image and one content stream, so
a 3,000-page file is a few hundred kilobytes and is written in milliseconds."""

from __future__ import annotations


def scanned_pdf(pages: int, *, text_pages: frozenset[int] = frozenset()) -> bytes:
    """A PDF of ``pages`` pages: the 1-based pages in ``text_pages`` carry a text layer ("Page N of
    the annual report..."), every other page is a scan (a full-page image, no text)."""
    objects: dict[int, bytes] = {}
    # 1 catalog, 2 pages tree, 3 the image, 4 the scan's content, 5 the font; pages from 10
    image = b"\x80"
    objects[3] = (
        b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length 1 >>\nstream\n" + image + b"\nendstream"
    )
    scan = b"q 612 0 0 792 0 0 cm /Im0 Do Q"
    objects[4] = b"<< /Length %d >>\nstream\n" % len(scan) + scan + b"\nendstream"
    objects[5] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    kids = []
    next_id = 10
    for number in range(1, pages + 1):
        page_id = next_id
        next_id += 1
        if number in text_pages:
            text = (
                f"BT /F1 12 Tf 72 720 Td (Page {number} of the annual report: revenue grew in every "
                f"region and the board approved the budget.) Tj ET"
            ).encode()
            content_id = next_id
            next_id += 1
            objects[content_id] = b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream"
        else:
            content_id = 4
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /XObject << /Im0 3 0 R >> /Font << /F1 5 0 R >> >> >>" % content_id
        )
        kids.append(page_id)
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (
        pages,
        b" ".join(b"%d 0 R" % k for k in kids),
    )
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for oid in sorted(objects):
        offsets[oid] = len(out)
        out += b"%d 0 obj\n" % oid + objects[oid] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n" % size
    out += b"0000000000 65535 f \n"
    for oid in range(1, size):
        if oid in offsets:
            out += b"%010d 00000 n \n" % offsets[oid]
        else:
            out += b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)
