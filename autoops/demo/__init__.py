from autoops.demo.frame import DecisionLine, DemoFrame
from autoops.demo.view import HeadlessView, LiveView, format_headless, render_frame

__all__ = [
    "DecisionLine",
    "DemoFrame",
    "HeadlessView",
    "LiveView",
    "format_headless",
    "render_frame",
]
