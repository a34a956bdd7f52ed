"""Plug-ins for other frameworks.  Each submodule needs that framework's extra and is imported by name,
never from here, so that `import vision_mamba` works without any of them:

    vision_mamba.integrations.mmseg   our backbones in mmsegmentation's MODELS registry (extra [mmseg])
"""
