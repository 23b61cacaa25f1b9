"""Request and response shapes of the executions API (also its OpenAPI schema)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.lifecycle.bulk import BULK_ACTIONS
from orchestra.lib.labels import LabelError, parse_labels


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"type": "array", "items": {"type": "string", "example": "env:prod"}},
        ]
    }
)
class LabelsField(serializers.Field):
    """``{"env": "prod"}`` or ``["env:prod"]``."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            if not all(
                isinstance(k, str) and isinstance(v, str | int | float | bool)
                for k, v in data.items()
            ):
                raise serializers.ValidationError("labels map names to text values")
            return {k: str(v) for k, v in data.items()}
        if isinstance(data, str) or (
            isinstance(data, list) and all(isinstance(i, str) for i in data)
        ):
            try:
                return parse_labels(data)
            except LabelError as exc:
                raise serializers.ValidationError(str(exc)) from None
        raise serializers.ValidationError(
            'expected {"key": "value"} or ["key:value", ...]'
        )

    def to_representation(self, value):
        return value


def reject_nul(value, path: str = "inputs"):
    """PostgreSQL cannot store NUL characters in text or JSON: refuse them up front."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(
                {path: "contains a NUL character (\\u0000)"}
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, path)
            reject_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nul(item, f"{path}[{index}]")
    return value


class TaskRunOut(serializers.Serializer):
    id = serializers.IntegerField()
    taskId = serializers.CharField()
    parentTaskRunId = serializers.IntegerField(allow_null=True)
    value = serializers.CharField(allow_null=True)
    attempt = serializers.IntegerField()
    state = serializers.CharField()
    outputs = serializers.DictField()
    error = serializers.CharField(allow_null=True)
    worker = serializers.CharField(allow_null=True)
    startDate = serializers.CharField(allow_null=True)
    endDate = serializers.CharField(allow_null=True)
    duration = serializers.FloatField(allow_null=True)


class AttemptStateOut(serializers.Serializer):
    current = serializers.CharField()
    startDate = serializers.CharField(allow_null=True)
    endDate = serializers.CharField(allow_null=True)
    duration = serializers.FloatField(allow_null=True)


class AttemptOut(serializers.Serializer):
    id = serializers.IntegerField()
    state = AttemptStateOut()
    error = serializers.CharField(allow_null=True)
    worker = serializers.CharField(allow_null=True)


class KestraTaskRunOut(serializers.Serializer):
    """Kestra's task run: one per task, parent and value, with its attempts."""

    id = serializers.IntegerField()
    taskId = serializers.CharField()
    parentTaskRunId = serializers.IntegerField(allow_null=True)
    value = serializers.CharField(allow_null=True)
    state = AttemptStateOut()
    outputs = serializers.DictField()
    attempts = AttemptOut(many=True)


class ExecutionOut(serializers.Serializer):
    """An execution as in search results and right after it is started."""

    id = serializers.IntegerField()
    namespace = serializers.CharField()
    flowId = serializers.CharField()
    revision = serializers.IntegerField()
    state = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField())
    inputs = serializers.DictField()
    outputs = serializers.DictField()
    trigger = serializers.DictField()
    parentId = serializers.IntegerField(
        allow_null=True, help_text="the execution whose Subflow task started this one"
    )
    parentTaskRunId = serializers.IntegerField(
        allow_null=True, help_text="the parent's task run that started this one"
    )
    originalId = serializers.IntegerField(
        allow_null=True, help_text="the execution this one replays"
    )
    attempt = serializers.IntegerField(help_text="1, then +1 per restart")
    error = serializers.CharField(allow_null=True)
    createdDate = serializers.CharField()
    scheduledDate = serializers.CharField(
        allow_null=True, help_text="when a scheduled start is due (null: at once)"
    )
    startDate = serializers.CharField(allow_null=True)
    endDate = serializers.CharField(allow_null=True)
    duration = serializers.FloatField(allow_null=True, help_text="seconds")


class LinkedExecutionOut(serializers.Serializer):
    id = serializers.IntegerField()
    namespace = serializers.CharField()
    flowId = serializers.CharField()
    state = serializers.CharField()


class ParentLinkOut(LinkedExecutionOut):
    taskRunId = serializers.IntegerField(allow_null=True)
    taskId = serializers.CharField(allow_null=True)


class ChildLinkOut(LinkedExecutionOut):
    taskRunId = serializers.IntegerField(allow_null=True)


class ExecutionDetailOut(ExecutionOut):
    """One execution with its task runs and its links both ways."""

    taskRuns = TaskRunOut(many=True)
    parent = ParentLinkOut(allow_null=True)
    children = ChildLinkOut(many=True, help_text="the first 100 subflow executions")
    childrenCount = serializers.IntegerField()
    original = LinkedExecutionOut(allow_null=True)
    replays = LinkedExecutionOut(many=True, help_text="the first 100 replays")
    replaysCount = serializers.IntegerField()
    taskRunList = KestraTaskRunOut(
        many=True, help_text="Kestra's shape: one task run with its attempts"
    )


class ExecutionPageOut(serializers.Serializer):
    results = ExecutionOut(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="URL of the next (older) page"
    )
    next_cursor = serializers.CharField(allow_null=True)


class LogOut(serializers.Serializer):
    id = serializers.IntegerField()
    executionId = serializers.IntegerField()
    taskRunId = serializers.IntegerField(allow_null=True)
    taskId = serializers.CharField(allow_null=True)
    attempt = serializers.IntegerField()
    level = serializers.CharField()
    timestamp = serializers.CharField()
    message = serializers.CharField()


class LogPageOut(serializers.Serializer):
    results = LogOut(many=True)
    last_id = serializers.IntegerField(
        help_text="pass as ?after= to get the next lines"
    )
    more = serializers.BooleanField()


class ExecuteIn(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict)
    labels = LabelsField(required=False, default=dict)

    def validate_inputs(self, value):
        return reject_nul(value, "inputs")

    def validate_labels(self, value):
        return reject_nul(value, "labels")


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(
        required=False, default="", max_length=500, allow_blank=True
    )


class ReplayIn(ReasonIn):
    from_task = serializers.CharField(
        required=False, allow_null=True, default=None, max_length=255
    )


class ResumeIn(ReasonIn):
    inputs = serializers.DictField(required=False, allow_null=True, default=None)

    def validate_inputs(self, value):
        return reject_nul(value, "inputs")


class BulkIn(serializers.Serializer):
    action = serializers.ChoiceField(choices=sorted(BULK_ACTIONS))
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=10_000,
        help_text="Execution ids; or give 'query' instead.",
    )
    query = serializers.DictField(
        required=False,
        help_text="The search filters of GET /api/executions, e.g. "
        '{"namespace": "company", "flow": "etl", "state": ["RUNNING"]}',
    )
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text="List what would happen; change nothing.",
    )
    reason = serializers.CharField(
        required=False, default="", max_length=500, allow_blank=True
    )

    def validate(self, attrs):
        if ("ids" in attrs) == ("query" in attrs):
            raise serializers.ValidationError("give either 'ids' or 'query'")
        return attrs


class BulkSkipOut(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class BulkOut(serializers.Serializer):
    action = serializers.CharField()
    dry_run = serializers.BooleanField()
    count = serializers.IntegerField()
    execution_ids = serializers.ListField(child=serializers.IntegerField())
    skipped = BulkSkipOut(many=True)
    message = serializers.CharField()
