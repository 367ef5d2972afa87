"""The default rerun layout: the hand in 3D beside each joint's position against its targets.

Left: the 3D view of `/world` on a plain background (no grid), so the hand, the object and the
axis arrow are all that is drawn. Right, in tabs: one small plot per joint (position, executed and
base target, residual), the rotation about the axis with the policy's timing, and the diagnostics
with their text log. The time panel stays open for scrubbing.
"""
from __future__ import annotations

import rerun.blueprint as rrb

from dexndm_description import hand

BACKGROUND = (238, 241, 245)  # pale blue-grey: the hand (dark), object (orange) and axis stand out


def default_blueprint(timeline: str = "tick") -> rrb.Blueprint:
    # The legend (position, executed target, base target, residual) on the first plot only: same colours in all.
    joints = rrb.Grid(*[rrb.TimeSeriesView(name=name, origin=f"/joints/{name}",
                                           plot_legend=rrb.PlotLegend(visible=j == 0, corner="LeftBottom"))
                        for j, name in enumerate(hand.JOINT_NAMES)], grid_columns=4, name="joints")
    run = rrb.Vertical(rrb.TimeSeriesView(name="rotation about the axis (rad)", origin="/rotation"),
                       rrb.TimeSeriesView(name="policy timing (ms)", origin="/policy"), name="rotation & timing")
    health = rrb.Vertical(rrb.TimeSeriesView(name="diagnostics", origin="/diagnostics"),
                          rrb.TextLogView(name="log", contents=["/diagnostics/log", "/events"]), name="diagnostics")
    hand_view = rrb.Spatial3DView(name="hand", origin="/world", background=BACKGROUND, line_grid=rrb.LineGrid3D(visible=False))
    return rrb.Blueprint(
        rrb.Horizontal(hand_view, rrb.Tabs(joints, run, health), column_shares=[1.2, 1.0]),
        rrb.BlueprintPanel(state="collapsed"), rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(state="expanded", timeline=timeline),
    )
