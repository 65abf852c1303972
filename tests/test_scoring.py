from digits_jax.scoring import edit_distance, read_labels, score


def test_edit_distance():
    assert edit_distance("4381297", "4381297") == 0
    assert edit_distance("4381297", "9381297") == 1
    assert edit_distance("123", "13") == 1
    assert edit_distance("", "12") == 2


def test_score_and_labels(tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_text("# file\ttruth\na.jpg\t12|345\nb.png\t7\n")
    assert read_labels(labels) == {"a.jpg": "12|345", "b.png": "7"}
    right = score("12|345", "12|395")
    assert right["errors"] == 1 and right["digits"] == 5 and right["lines_right"]
    wrong = score("12|345", "12345")
    assert wrong["errors"] == 0 and not wrong["lines_right"]
    assert score("12", "")["errors"] == 2
