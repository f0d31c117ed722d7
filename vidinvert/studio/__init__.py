"""``vidinvert studio``: a local web page to see an edit on any frame before rendering it.

The page calls the library (the editing session :class:`~vidinvert.pipeline.session.Editor` for
frames, :func:`~vidinvert.pipeline.job.run_edit` for whole clips), never the CLI. Modules:

- :mod:`~vidinvert.studio.request`: ``StudioRequest``, the command's typed options (torch- and
  gradio-free: read when the CLI starts);
- :mod:`~vidinvert.studio.controls`: the page's controls, each mapped to one ``edit`` option, and
  the request and command line they make;
- :mod:`~vidinvert.studio.studio`: what the page does, without the page (open, faces, render a
  frame exactly or as a cheap preview, render the clip, the directions and their sheet);
- :mod:`~vidinvert.studio.page`: the Gradio page wired to it;
- :mod:`~vidinvert.studio.guard` and :mod:`~vidinvert.studio.server`: the HTTP server (loopback by
  default, access token, same-origin only, files only from the allowed folders).

Gradio is an extra: ``pip install -e ".[studio]"``.
"""
