"""The pipeline's steps beyond the mailbox (design.md §6): the dossier (IHE XDM filing), the
agenda (iMIP, RFC 6047), the catalogue (manifests) and the consent of referenced apps.
"""
