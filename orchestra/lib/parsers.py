"""Request body parsers and content negotiation of the REST API (DRF), shared by
every app's endpoints."""

from __future__ import annotations

from rest_framework import exceptions, negotiation, parsers

from orchestra.lib import nesting


class ObjectJSONParser(parsers.JSONParser):
    """JSON bodies, which must be one object: ``null``, a list or a bare string
    is refused with 400 before any endpoint sees it (a ``null`` once ran a
    real cleanup because it looked like "no options"). Data nested deeper than
    64 levels is refused too (400), instead of Python's recursive decoder
    failing (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error: nested too deeply") from None
        try:
            nesting.check_depth(data)
        except nesting.TooDeep as exc:
            raise exceptions.ParseError(f"JSON parse error: {exc}") from None
        if not isinstance(data, dict):
            kind = {type(None): "null", list: "a list", str: "a string"}.get(
                type(data), "a number or boolean"
            )
            raise exceptions.ParseError(
                f"the body must be a JSON object ({{...}}), not {kind}"
            )
        return data


class YAMLTextParser(parsers.BaseParser):
    """A raw YAML document (``Content-Type: text/yaml``) becomes ``{"source": text}``."""

    media_type = "text/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream else b""
        try:
            return {"source": raw.decode("utf-8")}
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(
                f"the YAML body is not UTF-8 text ({exc.reason})"
            ) from None


class XYAMLTextParser(YAMLTextParser):
    media_type = "application/x-yaml"


class ApplicationYAMLParser(YAMLTextParser):
    media_type = "application/yaml"


YAML_PARSERS = [YAMLTextParser, XYAMLTextParser, ApplicationYAMLParser]
# Endpoints take JSON unless they say otherwise (flows: YAML too; execute:
# multipart forms too): any other Content-Type is a 415, not a guess.
FLOW_PARSERS = [ObjectJSONParser, *YAML_PARSERS]
FORM_PARSERS = [ObjectJSONParser, parsers.FormParser, parsers.MultiPartParser]


class JSONWhateverAccepted(negotiation.DefaultContentNegotiation):
    """The API answers JSON even to ``Accept: text/html`` (a browser) or a type
    it cannot produce, instead of a 406 or an HTML page: a renderer that
    matches the Accept header (a view's own, e.g. the schema's YAML) still
    wins."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type
