import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression

from featx.config import Task
from featx.heads import HEADS, infer_task, make_head, search_space

DATA = {
    Task.BINARY: make_classification(120, 12, random_state=0),
    Task.MULTICLASS: make_classification(150, 12, n_informative=6, n_classes=3, random_state=0),
    Task.MULTILABEL: make_multilabel_classification(120, 12, n_classes=3, random_state=0),
    Task.REGRESSION: make_regression(120, 12, noise=0.1, random_state=0),
}
DATA[Task.REGRESSION] = (DATA[Task.REGRESSION][0], DATA[Task.REGRESSION][1] / 100)
CASES = [(h, t) for h in HEADS for t in Task if not (h == "logreg" and t is Task.REGRESSION)]


@pytest.mark.parametrize(("head", "task"), CASES)
def test_every_head_fits_every_task_and_its_search_space_applies(head, task):
    X, y = DATA[task]
    model = make_head(head, task).fit(X, y)
    predicted = model.predict(X)
    assert predicted.shape == y.shape
    if task is Task.REGRESSION:
        assert np.corrcoef(predicted, y)[0, 1] > 0.5
    else:
        assert (predicted == y).mean() > 0.6
        if head != "ridge":  # ridge classifiers give decision scores only
            proba = model.predict_proba(X)
            rows = np.stack([p[:, 1] for p in proba], 1) if isinstance(proba, list) else proba
            assert rows.shape[0] == len(X) and np.all((rows >= 0) & (rows <= 1))
        else:
            assert not hasattr(model, "predict_proba")
    for key, values in search_space(head, task).items():
        make_head(head, task).set_params(**{key: values[0]})  # every path exists


def test_class_weights_and_regularisation_reach_the_estimator():
    X, y = DATA[Task.BINARY]
    model = make_head("logreg", "binary", class_weight="balanced", C=0.01)
    assert model.get_params()["class_weight"] == "balanced" and model.get_params()["C"] == 0.01
    svm = make_head("svm", "binary", class_weight={0: 1.0, 1: 2.0})
    assert svm.get_params()["estimator__class_weight"] == {0: 1.0, 1: 2.0}
    strong = make_head("ridge", "regression", alpha=1e6).fit(*DATA[Task.REGRESSION])
    assert np.abs(strong.coef_).max() < 1.0  # heavy regularisation shrinks the weights


def test_bad_heads_are_explained():
    with pytest.raises(ValueError, match="Unknown head 'forest'. Valid values: logreg"):
        make_head("forest")
    with pytest.raises(ValueError, match="logreg is a classifier"):
        make_head("logreg", "regression")
    with pytest.raises(ValueError, match="takes no class weights"):
        make_head("knn", "binary", class_weight="balanced")
    with pytest.raises(ValueError, match="Bad parameter for head 'logreg'"):
        make_head("logreg", "binary", gamma=3)
    with pytest.raises(ValueError, match="Unknown task"):
        make_head("logreg", "ranking")


def test_infer_task():
    assert infer_task(["a", "b", "a"]) is Task.BINARY
    assert infer_task([1, 2, 3]) is Task.MULTICLASS
    assert infer_task([0.5, 1.5, 2.0]) is Task.REGRESSION
    assert infer_task(np.array([[1, 0], [0, 1]])) is Task.MULTILABEL
    with pytest.raises(ValueError, match="one class only"):
        infer_task(["pos", "pos"])
