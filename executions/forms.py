"""Forms of the execution pages: the execute form built from a flow's inputs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from executions.storage import save_input_file
from flows.spec import FlowSpec
from flows.spec.inputs import InputError, resolve_inputs
from orchestra.lib.labels import LabelError, format_labels, label_map, parse_labels

MAX_UPLOAD = 100 * 1024 * 1024


class LabelsField(forms.CharField):
    """``key:value`` pairs (``key=value`` is read too), one per line or
    comma-separated; a mapping is shown back as ``key:value, ...``."""

    def prepare_value(self, value):
        return format_labels(value) if isinstance(value, dict) else value

    def to_python(self, value):
        try:
            if isinstance(value, dict | list):  # JSON: {"k": "v"} or ["k:v"]
                labels = label_map(value)
            else:
                labels = parse_labels(super().to_python(value) or "")
        except LabelError as exc:
            raise ValidationError(str(exc)) from None
        for key in labels:
            # A key with ':' or '=' would read back as another label
            # ({"a=b": "c"} shown as a=b:c is a:b=c): refused, not rewritten.
            if ":" in key or "=" in key or "," in key:
                raise ValidationError(
                    f"label key {key!r} may not contain ':', '=' or ','"
                )
        return labels


def _field_for(decl: dict[str, Any], *, require_booleans: bool) -> forms.Field:
    """A field that collects one input's text. Every field is optional for
    Django: whether a value is missing or mistyped is decided by
    ``flows.spec.inputs`` (the code the API and the CLI use) in one pass, so
    the form shows every problem at once. ``input_required`` says what the
    label marks with ``*`` (and ``aria-required``)."""
    kind = str(decl.get("type", "STRING")).upper()
    has_default = decl.get("defaults") is not None
    boolean = kind in ("BOOLEAN", "BOOL")
    required = (
        bool(decl.get("required", True))
        and not has_default
        and (require_booleans or not boolean)
    )
    common = {
        "required": False,
        "label": decl.get("displayName") or decl["id"],
        "help_text": decl.get("description") or "",
    }
    initial = decl.get("defaults")
    field = _widget_field(kind, decl, initial, required, require_booleans, common)
    if required:
        field.widget.attrs["aria-required"] = "true"
    field.input_id = decl["id"]
    field.input_kind = kind
    field.input_required = required
    return field


def _widget_field(kind, decl, initial, required, require_booleans, common):
    if kind in ("SELECT", "ENUM"):
        options = [str(v) for v in (decl.get("values") or decl.get("options") or [])]
        choices = ([("", "—")] if not required else []) + [(v, v) for v in options]
        return forms.ChoiceField(choices=choices, initial=initial, **common)
    if kind == "MULTISELECT":
        options = [str(v) for v in (decl.get("values") or decl.get("options") or [])]
        return forms.MultipleChoiceField(
            choices=[(v, v) for v in options],
            initial=initial,
            widget=forms.CheckboxSelectMultiple,
            **common,
        )
    if kind in ("BOOLEAN", "BOOL"):
        if require_booleans:
            # A person's yes or no: nothing is chosen until they choose.
            return forms.ChoiceField(
                choices=[("true", "Yes"), ("false", "No")],
                initial=None if initial is None else str(bool(initial)).lower(),
                widget=forms.RadioSelect,
                **common,
            )
        return forms.BooleanField(initial=bool(initial), **common)
    if kind == "FILE":
        return forms.FileField(**common)
    widgets = {
        "INT": forms.NumberInput(attrs={"step": 1}),
        "FLOAT": forms.NumberInput(attrs={"step": "any"}),
        "DATE": forms.DateInput(attrs={"type": "date"}),
        "DATETIME": forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}),
        "TIME": forms.TimeInput(attrs={"type": "time", "step": 1}),
        "DURATION": forms.TextInput(attrs={"placeholder": "PT1H30M"}),
        "SECRET": forms.PasswordInput(render_value=True),
        "EMAIL": forms.EmailInput(),
        "URI": forms.URLInput(),
        "JSON": forms.Textarea(
            attrs={"rows": 4, "class": "mono", "placeholder": '{"key": "value"}'}
        ),
        "ARRAY": forms.Textarea(
            attrs={"rows": 3, "class": "mono", "placeholder": "[1, 2, 3]"}
        ),
        "YAML": forms.Textarea(attrs={"rows": 4, "class": "mono"}),
    }
    if isinstance(initial, dict | list):
        import json

        initial = json.dumps(initial)
    return forms.CharField(
        initial=initial,
        strip=kind not in ("STRING", "SECRET"),
        widget=widgets.get(kind, forms.TextInput()),
        **common,
    )


class InputsForm(forms.Form):
    """Fields generated from input declarations (a flow's ``inputs``, a
    Pause's ``onResume``), checked all at once by ``resolve_inputs``."""

    require_booleans = False

    def __init__(self, decls: list[dict[str, Any]], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_decls = {d["id"]: d for d in decls}
        fields = {
            f"input_{name}": _field_for(decl, require_booleans=self.require_booleans)
            for name, decl in self.input_decls.items()
        }
        self.fields = {**fields, **self.fields}

    def input_fields(self):
        return [self[name] for name in self.fields if name.startswith("input_")]

    def clean(self):
        data = super().clean()
        supplied: dict[str, Any] = {}
        for name in self.input_decls:
            value = data.get(f"input_{name}")
            if hasattr(value, "size"):
                if value.size > MAX_UPLOAD:
                    self.add_error(
                        f"input_{name}", ValidationError("file is larger than 100 MiB")
                    )
                value = "kestra://uploaded"  # stored after the checks pass
            if value is not None and value != "" and value != []:
                supplied[name] = value
        try:
            resolve_inputs(
                list(self.input_decls.values()),
                supplied,
                require_booleans=self.require_booleans,
            )
        except InputError as exc:
            for name, message in exc.errors.items():
                field = f"input_{name}"
                if field in self.fields and field not in self.errors:
                    self.add_error(field, message)
        return data

    def add_input_errors(self, exc: InputError) -> None:
        for name, message in exc.errors.items():
            field = f"input_{name}"
            self.add_error(field if field in self.fields else None, message)

    def input_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.input_decls:
            value = self.cleaned_data.get(f"input_{name}")
            if value is None or value == "" or value == []:
                continue
            values[name] = self.stored(value)
        return values

    def stored(self, value: Any) -> Any:
        return value


class ExecuteForm(InputsForm):
    labels = LabelsField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "env:prod, team:data"}),
        help_text="Extra labels, key:value, comma-separated or one per line.",
    )

    def __init__(self, spec: FlowSpec, *args, **kwargs):
        self.spec = spec
        super().__init__(spec.inputs, *args, **kwargs)

    def stored(self, value: Any) -> Any:
        """Uploaded files are stored and passed as kestra:// URIs."""
        if hasattr(value, "read"):
            return save_input_file(
                self.spec.namespace, self.spec.id, value.name, value.read()
            )
        return value


class ResumeForm(InputsForm):
    """The answers a paused execution waits for (its Pause's ``onResume``)."""

    require_booleans = True
    reason = forms.CharField(
        required=False,
        max_length=500,
        help_text="Recorded in the execution's history.",
    )


class ReplayForm(forms.Form):
    from_task = forms.CharField(required=False, max_length=255)
