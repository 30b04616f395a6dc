"""The FS-Diff demo as a Hugging Face Space (Gradio SDK): the app of `fsdiff_diffusers.demo`, built and launched.

Locally, from this folder after `pip install -e ".[demo]"` at the repository root: `python app.py`, then open
http://127.0.0.1:7860. README.md says how to deploy it as a Space.
"""

from fsdiff_diffusers.demo import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.launch()
