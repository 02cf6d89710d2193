"""Tests for archiver.extract: real posts with exact expectations, then each syntactic form."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.extract import (
    EXTRACTOR_VERSION,
    Extraction,
    Reference,
    extract,
    is_asset_url,
    normalize_url,
    post_format,
)

FIXTURES = Path(__file__).parent / "fixtures" / "posts"

# Exact references of the real posts copied from the SOFAStack site. Each list was
# checked against the corpus's hand-made expected list (same URLs, nothing more).
FIXTURE_REFERENCES: dict[str, list[tuple[int, str, str]]] = {
    "content/en/blog/hello-sofastack/index.md": [
        (7, "front-matter:cover", "/cover.jpg"),
        (
            12,
            "markdown-image",
            "https://github.com/alipay/SOFAStack/raw/master/SOFAStack.svg?sanitize=true",
        ),
        (12, "markdown-link", "https://github.com/alipay/SOFAStack/blob/master/SOFAStack.svg"),
        (
            48,
            "html-img",
            "https://gw.alipayobjects.com/mdn/sofastack/afts/img/A*LVCnR6KtEfEAAAAAAAAAAABjARQnAQ",
        ),
        (
            62,
            "html-img",
            "https://gw.alipayobjects.com/mdn/sofastack/afts/img/A*ysJoQ78q3ewAAAAAAAAAAABkARQnAQ",
        ),
    ],
    "content/en/projects/mosn/_index.md": [
        (7, "front-matter:icon", "/img/icons/mosn.png"),
    ],
    "content/zh/activities/_index.md": [],
    "content/zh/activities/sofa-meetup-6/index.md": [
        (
            9,
            "front-matter:cover",
            "https://gw.alipayobjects.com/mdn/rms_95b965/afts/img/A*XB9ESa8q8PwAAAAAAAAAAAAAARQnAQ",
        ),
        (
            23,
            "markdown-link",
            "https://gw.alipayobjects.com/os/bmw-prod/30959033-63c5-43a4-93a4-75cbbb921296.pdf",
        ),
        (
            24,
            "markdown-link",
            "https://gw.alipayobjects.com/os/bmw-prod/aec94883-3d3e-47cc-974f-e85a90fb66ff.pdf",
        ),
        (
            25,
            "markdown-link",
            "https://gw.alipayobjects.com/os/bmw-prod/dfadad7f-b3f0-48e7-b7b0-14a4fad65efc.pdf",
        ),
        (
            26,
            "markdown-link",
            "https://gw.alipayobjects.com/os/bmw-prod/fbf09bcb-3c0f-4b66-af74-9dfa69966405.pdf",
        ),
        (
            32,
            "markdown-image",
            "https://gw.alipayobjects.com/mdn/rms_95b965/afts/img/A*gtzbRpciFa8AAAAAAAAAAAAAARQnAQ",
        ),
        (
            108,
            "markdown-image",
            "https://gw.alipayobjects.com/mdn/rms_95b965/afts/img/A*s3UzR6VeQ6cAAAAAAAAAAAAAARQnAQ",
        ),
    ],
    "content/zh/activities/sofastack-cloud-native-workshop/index.md": [
        (7, "front-matter:cover", "/cover.jpg"),
        (11, "markdown-image", "sofastack-cloud-native-workshop.jpg"),
    ],
    "content/zh/blog/htnn-how-to-deliberate-on-a-better-plugin-extension-mechanism/index.md": [
        (
            8,
            "front-matter:cover",
            "https://gw.alipayobjects.com/mdn/rms_1c90e8/afts/img/A*Rap6SJnP9f0AAAAAAAAAAAAAARQnAQ",
        ),
        (
            8,
            "front-matter:cover",
            "https://img.alicdn.com/imgextra/i3/O1CN01FFfozQ2803gDYqkjo_!!6000000007869-0-tps-1080-459.jpg",
        ),
    ],
    "content/zh/blog/service-mesh-api-udpa-follow-up/index.md": [
        (
            9,
            "front-matter:cover",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585189900989-0ae555ff-5258-4cd3-b288-b8f9895a1e8c.png",
        ),
        (
            50,
            "markdown-link",
            "https://static.sched.com/hosted_files/envoycon2019/ac/EnvoyCon UDPA 2019.pdf",
        ),
        (
            54,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585043233344-55789002-04f3-454c-a5aa-9d493f3469b3.png",
        ),
        (
            65,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585042334938-ec15ee71-9b52-4743-a6cf-3c0df57c81ae.png#align=left&display=inline&height=544&name=1.png&originHeight=544&originWidth=1080&size=244006&status=done&style=none&width=1080",
        ),
        (
            185,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585042601995-356febd3-61c0-476b-a9e2-ba534690be7c.png",
        ),
        (
            228,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585042586265-d74cfbcc-dd1c-40b3-bac6-5d460ba9e188.png",
        ),
        (
            250,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585042693738-c8a4f54d-10b4-4bc8-b97f-5f467e24506d.png",
        ),
        (
            260,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585042729260-97b74bb3-4af7-46d7-8255-195c5507cc92.png",
        ),
        (
            277,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585056667351-1634af3e-6c7a-4e08-8636-958bdcbf8469.png",
        ),
        (
            340,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585042829023-8ddfb500-bf83-41ad-bb23-1b77bce060c2.png",
        ),
        (
            377,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2020/png/226702/1585042889588-8bf59a22-4209-4db2-bc3b-5d5dd282d41b.png",
        ),
    ],
    "content/zh/blog/sofa-channel-5-retrospect/index.md": [
        (
            9,
            "front-matter:cover",
            "https://cdn.nlark.com/yuque/0/2019/jpeg/226702/1563455530059-b90e96a5-b1e8-4d0c-b2fe-2f7fba9bd6cf.jpeg",
        ),
        (
            17,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2019/png/226702/1558322592318-ca61f84d-9ca9-49ae-9193-dc18bc3402c5.png",
        ),
        (
            42,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2019/png/226702/1558411556485-9158ded4-a7bc-46b7-98cb-85eedcb3dc6d.png",
        ),
        (
            61,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2019/jpeg/226702/1558322592266-970c70c8-1ee2-4576-aa91-bba8717142d0.jpeg",
        ),
        (
            79,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2019/jpeg/226702/1558322592268-28ec9a5e-fd93-4666-ab76-43a66a4e09c6.jpeg",
        ),
        (
            106,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2019/jpeg/226702/1558322592271-7be9f6ca-1fb0-4e48-bc47-3a3e1ec30b06.jpeg",
        ),
        (
            136,
            "markdown-image",
            "https://cdn.nlark.com/yuque/0/2019/jpeg/226702/1558322592283-33a1c432-4e02-4c42-ab51-76958ee85948.jpeg",
        ),
    ],
    "content/zh/blog/sofa-weekly-20210903/index.md": [
        (
            9,
            "front-matter:cover",
            "https://gw.alipayobjects.com/mdn/rms_1c90e8/afts/img/A*_ewiQbuzeOQAAAAAAAAAAAAAARQnAQ",
        ),
        (
            35,
            "markdown-image",
            "https://gw.alipayobjects.com/zos/bmw-prod/5c029d9e-2fc7-4d61-ab13-df294fef22d7.webp",
        ),
        (
            36,
            "markdown-image",
            "https://gw.alipayobjects.com/zos/bmw-prod/9cbf2b61-c7da-4d91-91e1-2e9f5e69fcb0.webp",
        ),
        (
            58,
            "markdown-image",
            "https://gw.alipayobjects.com/zos/bmw-prod/514c5ac5-2afa-4ebe-a3fe-13184579995e.webp",
        ),
    ],
    "content/zh/projects/sofa-boot/sofa-ark-startup/index.md": [
        (
            10,
            "html-img",
            "https://user-images.githubusercontent.com/7148759/49442454-86cdec00-f804-11e8-8298-4f6165631298.png",
        ),
    ],
}


def run(text: str, fmt: str = "markdown", **kwargs: str) -> Extraction:
    """Extracts and checks the span invariant every caller relies on."""
    result = extract(text, fmt, **kwargs)  # type: ignore[arg-type]
    for ref in result.references:
        assert text[ref.start : ref.end] == ref.as_written, ref
        assert ref.line == text.count("\n", 0, ref.start) + 1, ref
    return result


def urls(text: str, fmt: str = "markdown", **kwargs: str) -> list[str]:
    return [ref.url for ref in run(text, fmt, **kwargs).references]


def kinds(text: str, fmt: str = "markdown") -> list[tuple[str, str]]:
    return [(ref.kind, ref.url) for ref in run(text, fmt).references]


@pytest.mark.parametrize("rel", sorted(FIXTURE_REFERENCES))
def test_real_posts_exact_references(rel: str) -> None:
    text = (FIXTURES / rel).read_bytes().decode("utf-8")
    found = [(r.line, r.kind, r.as_written) for r in run(text).references]
    assert found == FIXTURE_REFERENCES[rel]


def test_every_fixture_file_is_covered() -> None:
    posts = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.md")}
    assert posts == set(FIXTURE_REFERENCES)


def test_real_post_urls_are_normalised_and_relative_ones_flagged() -> None:
    rel = "content/zh/blog/service-mesh-api-udpa-follow-up/index.md"
    refs = run((FIXTURES / rel).read_text(encoding="utf-8")).references
    assert refs[1].url == (
        "https://static.sched.com/hosted_files/envoycon2019/ac/EnvoyCon%20UDPA%202019.pdf"
    )
    assert refs[3].url.endswith("b8b9895a1e8c.png") is False  # fragment dropped, not confused
    assert "#" not in refs[3].url
    bundle = "content/zh/activities/sofastack-cloud-native-workshop/index.md"
    refs = run((FIXTURES / bundle).read_text(encoding="utf-8")).references
    assert [(r.url, r.relative) for r in refs] == [
        ("/cover.jpg", True),
        ("sofastack-cloud-native-workshop.jpg", True),
    ]


def test_toml_front_matter_without_close_is_a_warning() -> None:
    text = (FIXTURES / "content/zh/activities/_index.md").read_bytes().decode("utf-8")
    assert not run(text).warnings
    text = text.replace("\r\n+++\r\n", "\r\n", 1)  # drop the closing fence
    result = run(text)
    assert [w.line for w in result.warnings] == [1]
    assert "never closed" in result.warnings[0].message


# ---------------------------------------------------------------- Markdown forms


def test_links_are_returned_only_for_assets() -> None:
    text = (
        "[home](https://example.com/about) [deck](https://example.com/talk.pdf)\n"
        "![badge](https://img.shields.io/badge/x) [pic](img/photo.png)\n"
    )
    assert kinds(text) == [
        ("markdown-link", "https://example.com/talk.pdf"),
        ("markdown-image", "https://img.shields.io/badge/x"),
        ("markdown-link", "img/photo.png"),
    ]


def test_upper_case_extension_and_query() -> None:
    text = "[Slides](https://Example.COM:443/Deck.PDF?dl=1) ![](https://x.org/A.JPG)"
    assert urls(text) == ["https://example.com/Deck.PDF?dl=1", "https://x.org/A.JPG"]


def test_protocol_relative_urls_get_https() -> None:
    text = '![](//cdn.example.com/pic) <img src="//cdn.example.com/a.png">'
    assert urls(text) == ["https://cdn.example.com/pic", "https://cdn.example.com/a.png"]


def test_angle_bracket_destination_and_title() -> None:
    text = "[deck](<https://example.com/my talk.pdf> \"Talk\") ![x](a.png 't')"
    refs = run(text).references
    assert [r.as_written for r in refs] == ["https://example.com/my talk.pdf", "a.png"]
    assert refs[0].url == "https://example.com/my%20talk.pdf"
    assert refs[0].text == "deck"


def test_destination_with_literal_spaces_is_accepted() -> None:
    text = "见[这份PPT](https://static.sched.com/ac/EnvoyCon UDPA 2019.pdf)。"
    refs = run(text).references
    assert [r.as_written for r in refs] == ["https://static.sched.com/ac/EnvoyCon UDPA 2019.pdf"]


def test_balanced_parentheses_in_destination() -> None:
    text = "[PDF](https://cdn.example.com/file/talk(1).pdf)"
    assert urls(text) == ["https://cdn.example.com/file/talk(1).pdf"]


def test_reference_style_links_and_images() -> None:
    text = (
        "![Logo][logo] and [the deck][] and [Slides], [page][home]\n"
        "\n"
        "[logo]: https://cdn.example.com/logo\n"
        '[The Deck]: <https://example.com/deck.pdf> "Deck"\n'
        "[slides]: /files/slides.PDF\n"
        "[home]: https://example.com/\n"
    )
    refs = run(text).references
    assert [(r.line, r.kind, r.url, r.text) for r in refs] == [
        (3, "markdown-ref", "https://cdn.example.com/logo", "Logo"),  # image use: no ext needed
        (4, "markdown-ref", "https://example.com/deck.pdf", "The Deck"),
        (5, "markdown-ref", "/files/slides.PDF", "slides"),
    ]
    assert refs[2].relative


def test_image_inside_link() -> None:
    text = "[![cover](https://x.org/c.png)](https://x.org/paper.pdf)"
    assert kinds(text) == [
        ("markdown-image", "https://x.org/c.png"),
        ("markdown-link", "https://x.org/paper.pdf"),
    ]


def test_autolinks_and_bare_urls() -> None:
    text = (
        "<https://example.com/a.pdf> see https://example.com/b.png, and\n"
        "(https://example.com/c.jpg). 图：https://example.com/d.gif。 https://example.com/page\n"
    )
    assert kinds(text) == [
        ("autolink", "https://example.com/a.pdf"),
        ("bare-url", "https://example.com/b.png"),
        ("bare-url", "https://example.com/c.jpg"),
        ("bare-url", "https://example.com/d.gif"),
    ]


def test_known_image_cdns_count_without_extension() -> None:
    text = (
        "[a](https://gw.alipayobjects.com/mdn/rms_95b965/afts/img/A*XB9ESa8q8PwAAAAAAAAAAAAAARQnAQ)\n"
        "https://p3-juejin.byteimg.com/tos-cn-i-k3u1fbpfcp/90e3~tplv-k3u1fbpfcp-zoom-1.image\n"
        "https://mmbiz.qpic.cn/mmbiz_png/abc/640?wx_fmt=png&wxfrom=5\n"
        "https://avatars.githubusercontent.com/u/1?v=4\n"
        "https://gw.alipayobjects.com/mdn/rms_95b965/afts/file/A*40JMT4iGEokAAAAAAAAAAABkARQnAQ\n"
    )
    assert len(urls(text)) == 4


def test_code_blocks_spans_and_comments_are_skipped() -> None:
    text = (
        "```md\n![](https://x.org/fenced.png)\n```\n"
        "\n"
        "    ![](https://x.org/indented.png)\n"
        "\n"
        "Use `![](https://x.org/span.png)` or ``a ` ![](https://x.org/span2.png)``.\n"
        "<!-- ![](https://x.org/comment.png) -->\n"
        "\n"
        "<!--\n![](https://x.org/block-comment.png)\n\n[x](https://x.org/c.pdf)\n-->\n"
        "- item\n\n    ![](https://x.org/list-continuation.png)\n"
        "\n"
        "~~~\nhttps://x.org/tilde.pdf\n~~~\n"
        "\\![not](https://x.org/escaped-bang.png) \\[text](https://x.org/escaped.pdf)\n"
    )
    refs = run(text).references
    assert [(r.kind, r.url) for r in refs] == [
        ("markdown-image", "https://x.org/list-continuation.png"),
        ("markdown-link", "https://x.org/escaped-bang.png"),  # "\!" leaves a link to a PNG
        ("bare-url", "https://x.org/escaped.pdf"),  # "\[" leaves the URL as plain text
    ]


def test_data_mailto_and_javascript_are_skipped() -> None:
    text = (
        "![](data:image/gif;base64,R0lGOD==) [m](mailto:a@b.org?subject=x.pdf)\n"
        '<a href="javascript:open(\'x.pdf\')">x</a> <img src="data:image/png;base64,AA">\n'
    )
    assert urls(text) == []


def test_entities_and_backslash_escapes_are_decoded() -> None:
    text = (
        '<img src="https://x.org/a.png?w=1&amp;h=2">\n\n'
        "[deck](https://x.org/a\\_b.pdf) ![](https://x.org/&#x41;.png)\n"
    )
    refs = run(text).references
    assert [(r.as_written, r.url) for r in refs] == [
        ("https://x.org/a.png?w=1&amp;h=2", "https://x.org/a.png?w=1&h=2"),
        ("https://x.org/a\\_b.pdf", "https://x.org/a_b.pdf"),
        ("https://x.org/&#x41;.png", "https://x.org/A.png"),
    ]


def test_markdown_inside_html_block_counts() -> None:
    text = '<p align="center">\n![arch](https://x.org/arch)\n</p>\n'
    assert kinds(text) == [("markdown-image", "https://x.org/arch")]


def test_raw_html_in_markdown() -> None:
    text = (
        '<img data-src="https://x.org/lazy" src="data:image/gif;base64,AA" alt="Lazy &amp; slow">\n'
        '<picture><source srcset="https://x.org/p.webp 1x, https://x.org/p2.webp 2x">'
        '<source src="https://x.org/v" type="video/mp4"></picture>\n'
        '<div style="background: url(&quot;https://x.org/bg&quot;)">x</div>\n'
        '<a href="https://x.org/paper.pdf">the <b>paper</b></a>\n'
        '<object data="https://x.org/o.pdf"></object><embed src="https://x.org/e.svg">\n'
        '<iframe src="https://x.org/viewer.pdf"></iframe><iframe src="https://x.org/page"></iframe>\n'
        '<image src="https://x.org/legacy" width="600"/>\n'
    )
    refs = run(text).references
    assert [(r.kind, r.url, r.text) for r in refs] == [
        ("html-img", "https://x.org/lazy", "Lazy & slow"),
        ("html-srcset", "https://x.org/p.webp", ""),
        ("html-srcset", "https://x.org/p2.webp", ""),
        ("css-url", "https://x.org/bg", ""),
        ("html-a", "https://x.org/paper.pdf", "the paper"),
        ("html-object", "https://x.org/o.pdf", ""),
        ("html-embed", "https://x.org/e.svg", ""),
        ("html-iframe", "https://x.org/viewer.pdf", ""),
        ("html-img", "https://x.org/legacy", ""),
    ]


def test_srcset_with_several_candidates() -> None:
    text = (
        '<img srcset="a.png 1x,b.png 2x , https://x.org/c_w_100,h_50/d 480w,'
        ' //x.org/e.jpg, f.jpg" src="a.png">'
    )
    refs = run(text).references
    assert [(r.kind, r.as_written) for r in refs] == [
        ("html-srcset", "a.png"),
        ("html-srcset", "b.png"),
        ("html-srcset", "https://x.org/c_w_100,h_50/d"),
        ("html-srcset", "//x.org/e.jpg"),
        ("html-srcset", "f.jpg"),
        ("html-img", "a.png"),
    ]


def test_table_cells_are_scanned_once() -> None:
    text = "| a | b |\n|---|---|\n| ![](x.png) | ![](y.png) |\n"
    assert urls(text) == ["x.png", "y.png"]


def test_crlf_text_keeps_offsets_and_lines() -> None:
    text = "---\r\ncover: a.png\r\n---\r\n\r\n![](b.png)\r\n"
    refs = run(text).references
    assert [(r.line, r.url) for r in refs] == [(2, "a.png"), (5, "b.png")]


def test_every_occurrence_is_kept() -> None:
    text = "![](a.png) ![](a.png)\n\n![](a.png)\n"
    assert [r.start for r in run(text).references] == [4, 15, 27]


def test_unparseable_url_is_a_warning() -> None:
    result = run("ok ![](https://x.org/a.png)\n\n![](http://[::1/x.png)\n")
    assert [r.url for r in result.references] == ["https://x.org/a.png"]
    assert [w.line for w in result.warnings] == [3]
    assert "unparseable" in result.warnings[0].message


def test_base_url_makes_relative_references_absolute() -> None:
    text = "---\ncover: /cover.jpg\n---\n![](img/a b.png) ![](../x.svg)\n"
    refs = run(text, base_url="https://site.org/blog/post/").references
    assert [(r.url, r.relative) for r in refs] == [
        ("https://site.org/cover.jpg", False),
        ("https://site.org/blog/post/img/a%20b.png", False),
        ("https://site.org/blog/x.svg", False),
    ]


# ---------------------------------------------------------------- front matter


def test_nested_yaml_front_matter() -> None:
    text = (
        "---\n"
        "title: Talk about a.png\n"
        "authorlink: https://github.com/someone\n"
        "icon: rocket\n"
        "params:\n"
        "  images: ['one.png', \"https://cdn.x.org/two\"]\n"
        "  og:\n"
        "    thumbnail: https://cdn.x.org/thumb\n"
        "  download: https://x.org/slides.pdf\n"
        "---\n"
        "Body\n"
    )
    refs = run(text).references
    assert [(r.line, r.kind, r.as_written) for r in refs] == [
        (6, "front-matter:images", "one.png"),
        (6, "front-matter:images", "https://cdn.x.org/two"),
        (8, "front-matter:thumbnail", "https://cdn.x.org/thumb"),
        (9, "front-matter:download", "https://x.org/slides.pdf"),
    ]


def test_front_matter_value_holding_markdown() -> None:
    text = '---\ncover: "[https://x.org/afts/img/A*1](https://x.org/c.jpg)"\n---\n'
    refs = run(text).references
    assert [(r.kind, r.url) for r in refs] == [
        ("front-matter:cover", "https://x.org/afts/img/A*1"),
        ("front-matter:cover", "https://x.org/c.jpg"),
    ]


def test_toml_front_matter() -> None:
    text = (
        "+++\n"
        'title = "Meetup"\n'
        'cover = "https://cdn.x.org/cover"\n'
        "[params]\n"
        "slides = ['talk.pdf', \"https://x.org/other.pdf\"]\n"
        "+++\n"
        "![](body.png)\n"
    )
    refs = run(text).references
    assert [(r.line, r.kind, r.url) for r in refs] == [
        (3, "front-matter:cover", "https://cdn.x.org/cover"),
        (5, "front-matter:slides", "talk.pdf"),
        (5, "front-matter:slides", "https://x.org/other.pdf"),
        (7, "markdown-image", "body.png"),
    ]


def test_front_matter_must_start_the_file() -> None:
    text = "\n---\ncover: https://cdn.x.org/c\n---\n"
    assert urls(text) == []


# ---------------------------------------------------------------- HTML documents


def test_html_document() -> None:
    text = (
        "<!doctype html>\n<html><head>\n"
        '<base href="https://site.org/event/">\n'
        '<meta property="og:image" content="/social">\n'
        "<style>.x { background: url(bg.png) }</style>\n"
        "</head><body>\n"
        '<!-- <img src="gone.png"> -->\n'
        '<p><a href="slides/deck.pdf">Deck</a> <a href="/about">About</a>\n'
        '<img src="pic" data-original="lazy.jpg" alt="A">\n'
        '<img srcset="s1.png 1x, s2.png 2x"></p>\n'
        '<pre><img src="code.png"></pre>\n'
        "<script>var s = '<img src=\"script.png\">';</script>\n"
        "</body></html>\n"
    )
    refs = run(text, "html").references
    assert [(r.line, r.kind, r.url, r.text) for r in refs] == [
        (4, "html-meta", "https://site.org/social", ""),
        (8, "html-a", "https://site.org/event/slides/deck.pdf", "Deck"),
        (9, "html-img", "https://site.org/event/pic", "A"),
        (9, "html-img", "https://site.org/event/lazy.jpg", "A"),
        (10, "html-srcset", "https://site.org/event/s1.png", ""),
        (10, "html-srcset", "https://site.org/event/s2.png", ""),
    ]


def test_html_document_without_base_keeps_relative_paths() -> None:
    text = '<p><img src="img/a%20b.png"><a href="../x.pdf">x</a>'
    refs = run(text, "html").references
    assert [(r.url, r.relative) for r in refs] == [("img/a b.png", True), ("../x.pdf", True)]


def test_malformed_html_does_not_raise() -> None:
    text = '<p><img src="a.png" alt="unclosed><a href=b.pdf>b</p></div></span>'
    run(text, "html")


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Example.COM:443/a b/ü.png#frag", "https://example.com/a%20b/%C3%BC.png"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x%20y%zz.pdf", "http://example.com:8080/x%20y%25zz.pdf"),
        ("//cdn.example.com/x?q=a b", "https://cdn.example.com/x?q=a%20b"),
        ("https://bücher.example/x.png", "https://xn--bcher-kva.example/x.png"),
    ],
)
def test_normalize_url(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    "raw", ["http://[::1/x", "https://host:port/x", "/relative.png", "http:///x"]
)
def test_normalize_url_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_url(raw)


@pytest.mark.parametrize(
    ("url", "asset"),
    [
        ("https://x.org/a.PNG?x=1", True),
        ("https://x.org/a.avif", True),
        ("cover.jpg", True),
        ("https://x.org/deck.pdf#page=2", True),
        ("https://x.org/deck.pptx", False),
        ("https://x.org/page", False),
        ("https://x.org/png", False),
        ("https://mmbiz.qpic.cn/mmbiz_jpg/abc/640?wx_fmt=jpeg", True),
    ],
)
def test_is_asset_url(url: str, asset: bool) -> None:
    assert is_asset_url(url) is asset


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a/index.md", "markdown"), ("x.MARKDOWN", "markdown"), ("p.htm", "html"), ("x.txt", None)],
)
def test_post_format(name: str, fmt: str | None) -> None:
    assert post_format(name) == fmt


def test_reference_is_a_frozen_value() -> None:
    ref = run("![](a.png)").references[0]
    assert ref == Reference("a.png", "a.png", 1, "markdown-image", "", 4, 9, relative=True)
    assert EXTRACTOR_VERSION


TRICKY_BLOCKS = """\
Intro ![a](https://x.org/1.png)
continued ![b](https://x.org/2.png)

1. step one

    ![indented list paragraph](https://x.org/3.png)

   ```bash
   curl https://x.org/not-me.png -o ![x](https://x.org/fenced-in-list.png)
   ```

- outer
  - inner

        ![code in inner item](https://x.org/code-in-item.png)

      ![inner paragraph](https://x.org/4.png)

> quote ![q](https://x.org/5.png)
> ```
> ![fenced in quote](https://x.org/fenced-in-quote.png)
> ```

    ![top-level indented code](https://x.org/indented-code.png)
# Heading ![h](https://x.org/6.png)
````md
```
![nested fence](https://x.org/nested-fence.png)
```
````
***
| a | b |
|---|---|
| ![t](https://x.org/7.png) | `![c](https://x.org/span.png)` |
"""


def test_block_structure_agrees_with_markdown_it() -> None:
    """The hand block scanner finds exactly the images a CommonMark parser renders."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(TRICKY_BLOCKS)
    rendered = [
        str(child.attrGet("src"))
        for token in tokens
        if token.type == "inline"
        for child in token.children or []
        if child.type == "image"
    ]
    assert rendered == [f"https://x.org/{n}.png" for n in range(1, 8)]
    assert urls(TRICKY_BLOCKS) == rendered


def test_the_package_exports_exactly_its_public_names() -> None:
    """Splitting extract into modules kept every name callers import from the package."""
    import archiver.extract as package

    assert sorted(package.__all__) == [
        "ASSET_EXTENSIONS",
        "EXTRACTOR_VERSION",
        "ExtractWarning",
        "Extraction",
        "FRONT_MATTER_MAX_DEPTH",
        "Format",
        "IMAGE_EXTENSIONS",
        "KNOWN_IMAGE_CDNS",
        "MAX_POST_CHARS",
        "Reference",
        "YAML_ALIAS_BUDGET",
        "extract",
        "is_asset_url",
        "normalize_url",
        "post_budget",
        "post_format",
    ]
    assert all(hasattr(package, name) for name in package.__all__)
    assert EXTRACTOR_VERSION == "2"


def test_reference_is_a_frozen_record() -> None:
    ref = extract("![a](https://x.org/a.png)\n", "markdown").references[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.url = "https://x.org/b.png"  # type: ignore[misc]


LAZY = ("yaml", "bs4", "markdown_it")


@pytest.mark.parametrize(
    ("text", "fmt", "imported"),
    [
        ("plain ![a](https://x.org/a.png)\n", "markdown", set()),
        ("+++\ncover = 'https://x.org/c.png'\n+++\nbody\n", "markdown", set()),
        ("---\ncover: https://x.org/c.png\n---\nbody\n", "markdown", {"yaml"}),
        ("[a][l]\n\n[l]: https://x.org/a.pdf\n", "markdown", {"markdown_it"}),
        ('<img src="https://x.org/a.png">', "html", {"bs4"}),
    ],
)
def test_parsers_are_imported_only_by_a_post_that_needs_them(
    text: str, fmt: str, imported: set[str]
) -> None:
    code = (
        "import sys\n"
        "from archiver.extract import extract\n"
        f"assert extract({text!r}, {fmt!r}).references\n"
        f"print(sorted(name for name in {LAZY!r} if name in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sorted(imported))
