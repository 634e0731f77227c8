"""Kink-matched PyTorch references for tools/compare-pytorch (backbone parity).

A ReLU, ReLU6, hardswish or hardsigmoid decides each element by the side of a breakpoint its
input lies on (0; 0 and 6; -3 and 3). An input within float32 rounding of a breakpoint is
decided on one side by a float32 run and on the other by float64, and that one decision moves
every gradient upstream of it by far more than rounding does (docs/results/
2026-12-06-backbone-parity.md). A float64 reference "with another run's kink decisions" runs the
module traced by torch.fx in float64 and, at every such activation, moves each input element
that lies on the other side of a breakpoint than the other run's input to just inside that
run's side (the breakpoint +/- EPSILON); the gradient passes through the moved element
unchanged. Its gradients then differ from the other run's by rounding alone.

A value exactly on a breakpoint is decided alike by both frameworks (the derivative their
backwards use there; tools/check-kink-matching checks PyTorch's autograd against this rule,
Sources/Kernels/Activation*.swift documents Leitner's): the lower breakpoint belongs to the
region below it, the upper one to the region above it:
    relu         gradient where x > 0
    relu6        gradient where 0 < x < 6
    hardsigmoid  gradient where -3 < x < 3
    hardswish    0 for x <= -3, x / 3 + 1/2 for -3 < x < 3, 1 for x >= 3
A value's region is the number of breakpoints it lies above by that rule.
"""
import torch
import torch.fx
from torch import nn
import torch.nn.functional as F

# Breakpoints per activation kind, ascending.
BREAKPOINTS = {"relu": (0.0,), "relu6": (0.0, 6.0), "hardswish": (-3.0, 3.0), "hardsigmoid": (-3.0, 3.0)}
# How far inside the wanted side a moved element is put.
EPSILON = 1e-12

MODULE_KINDS = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid"}
FUNCTION_KINDS = {torch.relu: "relu", F.relu: "relu", F.relu6: "relu6", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid"}
METHOD_KINDS = {"relu": "relu", "relu_": "relu"}


def activation_kind(graph_module, node):
    """"relu", "relu6", "hardswish" or "hardsigmoid" for an fx node applying one, else None."""
    if node.op == "call_module":
        return MODULE_KINDS.get(type(graph_module.get_submodule(node.target)))
    if node.op == "call_function":
        return FUNCTION_KINDS.get(node.target)
    if node.op == "call_method":
        return METHOD_KINDS.get(node.target)
    return None


def regions(values, kind):
    """The region of every element (0 below the first breakpoint, 1 above it, ...): which way
    its activation decides it."""
    region = torch.zeros(values.shape, dtype=torch.int64)
    for index, point in enumerate(BREAKPOINTS[kind]):
        region += (values >= point if index > 0 else values > point).to(torch.int64)
    return region


def force_sides(values, wanted, kind):
    """`values` (the float64 input of an activation) with every element whose region differs
    from `wanted`'s (the other run's input) moved to just inside the wanted region; the gradient
    passes through unchanged. Returns (tensor, elements moved)."""
    wanted = wanted.reshape(values.shape)
    ours = regions(values.detach(), kind)
    theirs = regions(wanted, kind)
    differ = ours != theirs
    moved = int(differ.sum())
    if moved == 0:
        return values, 0
    points = torch.tensor(BREAKPOINTS[kind], dtype=values.dtype)
    last = len(BREAKPOINTS[kind]) - 1
    # Up: just above the wanted region's lower breakpoint; down: just below its upper one.
    up = points[(theirs - 1).clamp(0, last)] + EPSILON
    down = points[theirs.clamp(0, last)] - EPSILON
    target = torch.where(theirs > ours, up, down)
    shift = torch.where(differ, target - values.detach(), torch.zeros((), dtype=values.dtype))
    return values + shift, moved


class KinkInterpreter(torch.fx.Interpreter):
    """Runs a traced module; at every activation it records the input (`record`) and/or forces
    the input's sides to `wanted[fx node name]`, counting the
    moved elements per activation node in `moved` (name -> (moved, elements))."""

    def __init__(self, graph_module, wanted=None, record=False):
        super().__init__(graph_module)
        self.wanted, self.record = wanted, record
        self.moved, self.recorded = {}, {}

    def run_node(self, node):
        kind = activation_kind(self.module, node)
        if kind is None:
            return super().run_node(node)
        with self._set_current_node(node):
            args, kwargs = self.fetch_args_kwargs_from_env(node)
            values = args[0]
            if self.record:
                # Cloned: an in-place activation overwrites its input.
                self.recorded[node.name] = values.detach().clone()
            if self.wanted is not None:
                if node.name not in self.wanted:
                    raise KeyError(f"no decisions for activation node '{node.name}'")
                values, moved = force_sides(values, self.wanted[node.name], kind)
                self.moved[node.name] = (moved, values.numel())
                args = (values,) + tuple(args[1:])
            return getattr(self, node.op)(node.target, args, kwargs)


def activation_nodes(graph_module):
    """(fx node, kind) of every activation in a traced module, in graph order."""
    return [(node, kind) for node in graph_module.graph.nodes if (kind := activation_kind(graph_module, node))]


def step_gradients(graph_module, x, y, wanted=None):
    """One training-mode forward and backward of `graph_module` (mean cross-entropy) with the
    activations' sides forced to `wanted` (see KinkInterpreter): (loss, {parameter name:
    gradient}, {activation node: (moved, elements)})."""
    graph_module.train()
    graph_module.zero_grad(set_to_none=True)
    interpreter = KinkInterpreter(graph_module, wanted=wanted)
    loss = F.cross_entropy(interpreter.run(x), y)
    loss.backward()
    gradients = {name: p.grad.detach().clone() for name, p in graph_module.named_parameters()}
    return loss.item(), gradients, interpreter.moved


def activation_inputs(graph_module, x):
    """The input of every activation of one training-mode forward (no gradient), by fx node name."""
    graph_module.train()
    interpreter = KinkInterpreter(graph_module, record=True)
    with torch.no_grad():
        interpreter.run(x)
    return interpreter.recorded
