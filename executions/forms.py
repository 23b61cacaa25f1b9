"""Forms of the execution pages: the execute form built from a flow's inputs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from executions.storage import save_input_file
from flows.spec import FlowSpec
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


def _field_for(decl: dict[str, Any]) -> forms.Field:
    kind = str(decl.get("type", "STRING")).upper()
    has_default = decl.get("defaults") is not None
    required = (
        bool(decl.get("required", True))
        and not has_default
        and kind not in ("BOOLEAN", "BOOL")
    )
    common = {
        "required": required,
        "label": decl.get("displayName") or decl["id"],
        "help_text": decl.get("description") or "",
    }
    initial = decl.get("defaults")
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
        return forms.BooleanField(
            initial=bool(initial), **{**common, "required": False}
        )
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
    # Values are converted and checked by flows.spec.inputs, the same code the
    # API and the CLI use; the form only collects text.
    return forms.CharField(
        initial=initial,
        strip=kind not in ("STRING", "SECRET"),
        widget=widgets.get(kind, forms.TextInput()),
        **common,
    )


class ExecuteForm(forms.Form):
    labels = LabelsField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "env:prod, team:data"}),
        help_text="Extra labels, key:value, comma-separated or one per line.",
    )

    def __init__(self, spec: FlowSpec, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.input_decls = {d["id"]: d for d in spec.inputs}
        fields = {
            f"input_{name}": _field_for(decl) for name, decl in self.input_decls.items()
        }
        self.fields = {**fields, "labels": self.fields["labels"]}

    def input_fields(self):
        return [self[name] for name in self.fields if name.startswith("input_")]

    def clean(self):
        data = super().clean()
        for name, value in list(data.items()):
            if hasattr(value, "size") and value.size > MAX_UPLOAD:
                self.add_error(name, ValidationError("file is larger than 100 MiB"))
        return data

    def input_values(self) -> dict[str, Any]:
        """Supplied values; uploaded files are stored and passed as kestra:// URIs."""
        values: dict[str, Any] = {}
        for name in self.input_decls:
            value = self.cleaned_data.get(f"input_{name}")
            if value is None or value == "" or value == []:
                continue
            if hasattr(value, "read"):
                value = save_input_file(
                    self.spec.namespace, self.spec.id, value.name, value.read()
                )
            values[name] = value
        return values


class ReplayForm(forms.Form):
    from_task = forms.CharField(required=False, max_length=255)
