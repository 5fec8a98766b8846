from portal.core.text import storable_text


def test_nul_characters_are_removed_and_lone_surrogates_replaced():
    assert storable_text("echo\x00x") == "echox"
    assert storable_text("echo\ud800x\udfff") == "echo\ufffdx\ufffd"
    assert storable_text("echo\ud800x").encode("utf-8") == "echo\ufffdx".encode()


def test_well_formed_text_is_kept_and_capped_at_the_limit():
    assert storable_text("héllo 😀 wörld") == "héllo 😀 wörld"
    assert storable_text("a\x00bcdef", 3) == "abc"
