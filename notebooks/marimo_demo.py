"""The explanation view in marimo: `marimo run notebooks/marimo_demo.py` (or `marimo edit`).

A small CNN trained on MNIST (shipped with the package); pick a method or a class, or
click a class tile, and the map, tiles, probabilities and status follow.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    from xai_widgets.marimo import explain_app
    from xai_widgets.zoo import load_demo

    return explain_app, load_demo, mo


@app.cell
def _(mo):
    mo.md("""
    # Explaining an MNIST classifier

    Red = evidence for the class explained, blue = evidence against it. Change the
    method, pick a class, or click a class tile below the controls.
    """)
    return


@app.cell
def _(load_demo):
    model, images, _labels, classes = load_demo("mnist")
    return classes, images, model


@app.cell
def _(classes, explain_app, images, model):
    view = explain_app(model, images[0], classes=classes)
    view  # noqa: B018 - the last expression: marimo shows it
    return


if __name__ == "__main__":
    app.run()
