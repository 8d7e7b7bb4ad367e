"""brushwork studio: a local web page over the Python face (``brushwork studio``).

``modes`` says what each mode asks for and how it calls the face, ``jobs`` runs one job
at a time per device, ``app`` is the HTTP side (Starlette; ``pip install
"brushwork[studio]"``).
"""
