"""Every text of the patient's space, in French (what patients read) and in English (the source
for translators, and the pages with ``?lang=en``): one table, keyed by a message id.

A translator adds a language by adding a column: a dictionary with the same keys. A test checks
that every language has every key (tests/server/test_espace_texts.py).
"""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "fr": {
        "site": "Mon espace santé", "lang_other": "English", "skip": "Aller au contenu",
        "nav_label": "Menu de mon espace santé", "nav_messages": "Messagerie",
        "nav_documents": "Documents", "nav_agenda": "Agenda", "nav_apps": "Applications",
        "nav_history": "Historique des accès", "nav_settings": "Paramètres",
        "inbox": "Boîte de réception", "no_subject": "(sans objet)",
        "msg_folders": "Dossiers de la messagerie",
        "msg_none": "Aucun message dans ce dossier.",
        "msg_rule": "Vous pouvez répondre aux professionnels qui vous ont écrit ; vous ne "
                    "pouvez pas leur écrire les premiers.",
        "msg_missing": "Ce message n'existe pas ou n'est pas dans votre messagerie.",
        "msg_attachment": "pièce jointe", "msg_attachments": "Pièces jointes",
        "msg_from": "De", "msg_to": "À", "msg_date": "Date",
        "msg_reply_title": "Répondre", "msg_reply_label": "Votre réponse à",
        "msg_send": "Envoyer la réponse", "msg_sent": "Votre réponse est envoyée.",
        "msg_reply_empty": "Écrivez votre réponse (20 000 caractères au plus).",
        "msg_refused": "Votre réponse n'a pas été envoyée : {reason}",
        "msg_closed": "Ce professionnel a clos l'échange : vous ne pouvez pas lui répondre.",
        "msg_back": "Retour aux messages",
        "agenda_upcoming": "Rendez-vous à venir", "agenda_past": "Rendez-vous passés",
        "agenda_none": "Aucun rendez-vous.", "agenda_untitled": "Rendez-vous",
        "agenda_cancelled": "Annulé", "agenda_accept": "Accepter", "agenda_decline": "Refuser",
        "agenda_accepter": "Vous avez accepté le rendez-vous ; le professionnel en est informé.",
        "agenda_refuser": "Vous avez refusé le rendez-vous ; le professionnel en est informé.",
        "agenda_missing": "Ce rendez-vous n'existe pas ou ne vous attend pas de réponse.",
        "agenda_feed": "Votre agenda dans une application de calendrier",
        "agenda_feed_intro": "Abonnez votre application de calendrier à cette adresse, avec un "
                             "jeton d'accès obtenu à la connexion (hygie-client le fait pour "
                             "vous) :",
        "partstat_accepted": "Accepté", "partstat_declined": "Refusé",
        "partstat_needs_action": "En attente de votre réponse",
        "partstat_tentative": "Peut-être",
        "cat_page_intro": "Les applications référencées peuvent, avec votre accord, vous "
                          "écrire, lire votre dossier, y déposer des documents ou vous "
                          "proposer des rendez-vous. Vous choisissez quoi et pour combien de "
                          "temps, et pouvez retirer votre accord à tout moment.",
        "cat_connected": "Mes applications connectées", "cat_none_connected":
            "Aucune application connectée.", "cat_state_active": "Active",
        "cat_state_expired": "Expirée", "cat_state_revoked": "Révoquée",
        "cat_scopes": "Autorisée à", "cat_until": "jusqu'au", "cat_revoke": "Révoquer",
        "cat_recent": "Ce que l'application a fait", "cat_allowed": "autorisé",
        "cat_denied": "refusé", "cat_no_access": "Aucun accès pour le moment.",
        "cat_catalogue": "Le catalogue", "cat_search": "Rechercher",
        "cat_category": "Catégorie", "cat_all": "Toutes",
        "cat_search_button": "Rechercher", "cat_none": "Aucune application ne correspond.",
        "cat_choose": "Ce que vous autorisez à", "cat_duration": "Pour une durée de",
        "cat_months": "mois", "cat_connect": "Connecter",
        "cat_connectee": "L'application est connectée.",
        "cat_revoquee": "L'application est révoquée : elle n'a plus accès à rien.",
        "cat_bad_form": "Choisissez une application et une durée.",
        "cat_refused": "L'application n'a pas été connectée : {reason}",
        "cat_not_connected": "Cette application n'est pas connectée.",
        "sessions_title": "Sessions actives", "session_page": "Navigateur",
        "session_token": "Application (hygie-client, jeton)", "session_since": "depuis le",
        "session_until": "jusqu'au",
        "msg_no_start": "Vous ne pouvez pas répondre à ce message : seul un professionnel qui "
                        "vous a écrit peut recevoir une réponse.",
        "doc_intro": "Les documents de votre dossier médical, déposés par les professionnels "
                     "qui vous soignent.",
        "doc_by_date": "Par date", "doc_by_type": "Par type de document",
        "doc_none": "Votre dossier ne contient aucun document pour le moment.",
        "doc_hidden": "Masqué aux professionnels", "doc_hide": "Masquer aux professionnels",
        "doc_show": "Rendre visible aux professionnels",
        "doc_masque": "Le document est masqué aux professionnels.",
        "doc_affiche": "Le document est de nouveau visible des professionnels.",
        "doc_rule": "Seuls votre médecin traitant et l'auteur d'un document peuvent le lire. "
                    "Un document masqué ne l'est plus par aucun professionnel, médecin "
                    "traitant compris ; vous pouvez le rendre visible à tout moment.",
        "doc_missing": "Ce document n'existe pas ou n'est pas dans votre dossier.",
        "doc_pdf_open": "Afficher le document PDF", "doc_pdf_download": "Télécharger le PDF",
        "doc_empty": "Ce document n'a pas de contenu lisible ici.",
        "doc_back": "Retour aux documents",
        "history_intro": "Qui a consulté ou ajouté quoi dans votre dossier, et quand.",
        "history_none": "Aucun accès à votre dossier pour le moment.",
        "col_when": "Date", "col_who": "Qui", "col_action": "Action", "col_what": "Quoi",
        "you": "Vous", "closed_account": "Compte fermé", "your_dossier": "Votre dossier",
        "a_document": "Un document", "act_list": "a consulté la liste des documents",
        "act_read": "a lu", "act_hide": "a masqué aux professionnels",
        "act_show": "a rendu visible aux professionnels", "act_denied": "accès refusé à",
        "act_block": "a bloqué un professionnel", "act_unblock": "a débloqué un professionnel",
        "act_filed": "document ajouté",
        "refuse_title": "Refuser l'ouverture de mon espace santé",
        "refuse_intro": "Saisissez le code à usage unique reçu dans votre invitation. "
                        "Une fois le refus enregistré, aucun espace ne sera ouvert pour vous.",
        "code": "Code de l'invitation", "code_hint": "10 caractères, sans espaces ni tirets",
        "refuse_button": "Refuser mon espace santé",
        "refused_title": "Votre refus est enregistré",
        "refused_text": "Aucun espace santé ne sera ouvert pour vous. Vous pouvez fermer "
                        "cette page.",
        "refuse_bad": "Ce code est inconnu, a déjà servi, ou le délai de refus est passé.",
        "activate_title": "Activer mon espace santé",
        "activate_intro": "Votre espace est ouvert. Saisissez le code de votre invitation et "
                          "choisissez votre mot de passe (12 caractères au moins).",
        "new_password": "Nouveau mot de passe", "new_password_again": "Le même, à nouveau",
        "activate_button": "Activer mon espace",
        "activated": "Votre espace est activé. Votre adresse : {address}. Activez maintenant "
                     "la double authentification.",
        "activate_bad": "Ce code est inconnu, a déjà servi, ou votre espace n'est pas encore "
                        "ouvert.",
        "password_short": "Le mot de passe doit avoir 12 caractères au moins.",
        "password_differ": "Les deux mots de passe diffèrent.",
        "signin_title": "Connexion à mon espace santé",
        "address": "Adresse de messagerie santé", "password": "Mot de passe",
        "totp": "Code de l'application d'authentification",
        "totp_hint": "6 chiffres. Laissez vide si vous n'avez pas encore activé la double "
                     "authentification : un code vous sera envoyé par e-mail.",
        "signin_button": "Se connecter",
        "enrol_title": "Activer la double authentification",
        "enrol_intro": "Scannez ce QR code avec votre application d'authentification "
                       "(par exemple FreeOTP, Aegis ou Google Authenticator), puis saisissez "
                       "le code à 6 chiffres qu'elle affiche.",
        "enrol_secret": "Si vous ne pouvez pas scanner le QR code, saisissez cette clé :",
        "enrol_button": "Activer", "enrol_done": "La double authentification est activée.",
        "account_title": "Mon compte",
        "apps_title": "Mots de passe d'application",
        "apps_intro": "Votre logiciel de messagerie (Thunderbird, Apple Mail…) se connecte "
                      "avec un mot de passe d'application, jamais avec votre mot de passe.",
        "apps_none": "Aucun mot de passe d'application.",
        "app_label": "Nom de l'appareil ou du logiciel", "app_create": "Créer",
        "app_created": "Nouveau mot de passe d'application (il ne sera plus affiché) :",
        "app_revoke": "Révoquer", "app_revoked": "Mot de passe d'application révoqué.",
        "created": "créé le",
        "close_title": "Fermer mon espace santé",
        "close_intro": "Votre messagerie sera désactivée aussitôt ; vos données seront "
                       "supprimées après le délai de conservation ({days} jours).",
        "close_confirm": "Je confirme vouloir fermer mon espace santé",
        "close_button": "Fermer mon espace",
        "closed_title": "Votre espace santé est fermé",
        "closed_text": "Vos données seront supprimées le {date}.",
        "signout": "Se déconnecter", "signed_out": "Vous êtes déconnecté, sur tous vos appareils.",
        "signout_hint": "Met fin à toutes vos sessions, sur tous vos appareils, et aux jetons "
                        "de connexion (hygie-client, applications). Vos mots de passe "
                        "d'application restent valables.",
        "verify_title": "Vérifier que c'est bien vous",
        "verify_intro": "Avant d'activer la double authentification, saisissez le code que nous "
                        "venons d'envoyer à votre adresse de messagerie personnelle ({email}). "
                        "Il est valable 15 minutes.",
        "verify_code": "Code reçu par e-mail",
        "verify_hint": "8 caractères, sans espaces",
        "verify_button": "Continuer",
        "no_personal_address": "Aucune adresse de messagerie personnelle ne permet de vous "
                               "envoyer un code. Demandez à votre établissement d'activer la "
                               "double authentification avec vous.",
        "code_recent": "Un code vient de vous être envoyé. Attendez une minute avant d'en "
                       "demander un autre.",
        "code_unsent": "Le code n'a pas pu être envoyé. Réessayez dans quelques minutes.",
        "code_spent": "Trop de codes incorrects. Connectez-vous à nouveau pour recevoir un "
                      "nouveau code.",
        "csrf": "Le formulaire a expiré. Rechargez la page et recommencez.",
        "session": "Votre session a expiré. Connectez-vous à nouveau.",
        "error": "Erreur", "back": "Retour à la connexion",
        "wrong address or password": "Adresse ou mot de passe incorrect.",
        "wrong code": "Code incorrect.",
        "this code was already used; wait for the next one":
            "Ce code a déjà servi ; attendez le suivant.",
        "too many attempts; try again in a minute": "Trop de tentatives ; réessayez dans "
                                                    "une minute.",
        "two-factor sign-in is not enrolled": "La double authentification n'est pas activée.",
        "too many wrong codes today; try again tomorrow":
            "Trop de codes incorrects aujourd'hui ; réessayez demain.",
        "code_required": "Saisissez le code de votre application d'authentification.",
    },
    "en": {
        "site": "My health space", "lang_other": "Français", "skip": "Skip to content",
        "nav_label": "My health space menu", "nav_messages": "Messages",
        "nav_documents": "Documents", "nav_agenda": "Calendar", "nav_apps": "Apps",
        "nav_history": "Access history", "nav_settings": "Settings",
        "inbox": "Inbox", "no_subject": "(no subject)",
        "msg_folders": "Message folders",
        "msg_none": "No message in this folder.",
        "msg_rule": "You may reply to the professionals who wrote to you; you cannot write "
                    "to them first.",
        "msg_missing": "This message does not exist or is not in your mailbox.",
        "msg_attachment": "attachment", "msg_attachments": "Attachments",
        "msg_from": "From", "msg_to": "To", "msg_date": "Date",
        "msg_reply_title": "Reply", "msg_reply_label": "Your reply to",
        "msg_send": "Send the reply", "msg_sent": "Your reply was sent.",
        "msg_reply_empty": "Write your reply (at most 20,000 characters).",
        "msg_refused": "Your reply was not sent: {reason}",
        "msg_closed": "This professional closed the exchange: you cannot reply.",
        "msg_back": "Back to the messages",
        "agenda_upcoming": "Upcoming appointments", "agenda_past": "Past appointments",
        "agenda_none": "No appointment.", "agenda_untitled": "Appointment",
        "agenda_cancelled": "Cancelled", "agenda_accept": "Accept", "agenda_decline": "Decline",
        "agenda_accepter": "You accepted the appointment; the professional is told.",
        "agenda_refuser": "You declined the appointment; the professional is told.",
        "agenda_missing": "This appointment does not exist or awaits no answer from you.",
        "agenda_feed": "Your calendar in a calendar app",
        "agenda_feed_intro": "Subscribe your calendar app to this address, with an access "
                             "token from the sign-in (hygie-client does it for you):",
        "partstat_accepted": "Accepted", "partstat_declined": "Declined",
        "partstat_needs_action": "Awaiting your answer",
        "partstat_tentative": "Maybe",
        "cat_page_intro": "Referenced apps may, with your consent, write to you, read your "
                          "record, file documents in it or propose appointments. You choose "
                          "what and for how long, and may withdraw your consent at any time.",
        "cat_connected": "My connected apps", "cat_none_connected": "No connected app.",
        "cat_state_active": "Active", "cat_state_expired": "Expired",
        "cat_state_revoked": "Revoked",
        "cat_scopes": "Allowed to", "cat_until": "until", "cat_revoke": "Revoke",
        "cat_recent": "What the app did", "cat_allowed": "allowed",
        "cat_denied": "refused", "cat_no_access": "No access yet.",
        "cat_catalogue": "The catalogue", "cat_search": "Search",
        "cat_category": "Category", "cat_all": "All",
        "cat_search_button": "Search", "cat_none": "No app matches.",
        "cat_choose": "What you allow", "cat_duration": "For",
        "cat_months": "months", "cat_connect": "Connect",
        "cat_connectee": "The app is connected.",
        "cat_revoquee": "The app is revoked: it no longer has access to anything.",
        "cat_bad_form": "Choose an app and a duration.",
        "cat_refused": "The app was not connected: {reason}",
        "cat_not_connected": "This app is not connected.",
        "sessions_title": "Active sessions", "session_page": "Browser",
        "session_token": "App (hygie-client, token)", "session_since": "since",
        "session_until": "until",
        "msg_no_start": "You cannot reply to this message: only a professional who wrote to "
                        "you can receive a reply.",
        "doc_intro": "The documents of your medical record, filed by the professionals who care "
                     "for you.",
        "doc_by_date": "By date", "doc_by_type": "By document type",
        "doc_none": "Your record holds no document yet.",
        "doc_hidden": "Hidden from professionals", "doc_hide": "Hide from professionals",
        "doc_show": "Show to professionals",
        "doc_masque": "The document is hidden from professionals.",
        "doc_affiche": "The document is visible to professionals again.",
        "doc_rule": "Only your regular doctor and a document's author may read it. A hidden "
                    "document is read by no professional, your regular doctor included; you "
                    "may show it again at any time.",
        "doc_missing": "This document does not exist or is not in your record.",
        "doc_pdf_open": "Show the PDF document", "doc_pdf_download": "Download the PDF",
        "doc_empty": "This document has no content that can be shown here.",
        "doc_back": "Back to the documents",
        "history_intro": "Who read or added what in your record, and when.",
        "history_none": "No access to your record yet.",
        "col_when": "Date", "col_who": "Who", "col_action": "Action", "col_what": "What",
        "you": "You", "closed_account": "Closed account", "your_dossier": "Your record",
        "a_document": "A document", "act_list": "listed the documents",
        "act_read": "read", "act_hide": "hid from professionals",
        "act_show": "showed to professionals", "act_denied": "was refused access to",
        "act_block": "blocked a professional", "act_unblock": "unblocked a professional",
        "act_filed": "document added",
        "refuse_title": "Refuse the opening of my health space",
        "refuse_intro": "Enter the one-time code from your invitation. Once your refusal is "
                        "recorded, no space will be opened for you.",
        "code": "Invitation code", "code_hint": "10 characters, no spaces or dashes",
        "refuse_button": "Refuse my health space",
        "refused_title": "Your refusal is recorded",
        "refused_text": "No health space will be opened for you. You may close this page.",
        "refuse_bad": "This code is unknown, was already used, or the refusal period is over.",
        "activate_title": "Activate my health space",
        "activate_intro": "Your space is open. Enter the code from your invitation and choose "
                          "your password (at least 12 characters).",
        "new_password": "New password", "new_password_again": "The same again",
        "activate_button": "Activate my space",
        "activated": "Your space is active. Your address: {address}. Now enable two-factor "
                     "sign-in.",
        "activate_bad": "This code is unknown, was already used, or your space is not open yet.",
        "password_short": "The password needs at least 12 characters.",
        "password_differ": "The two passwords differ.",
        "signin_title": "Sign in to my health space",
        "address": "Health mail address", "password": "Password",
        "totp": "Authenticator app code",
        "totp_hint": "6 digits. Leave empty if you have not enabled two-factor sign-in yet: a "
                     "code will be sent to you by e-mail.",
        "signin_button": "Sign in",
        "enrol_title": "Enable two-factor sign-in",
        "enrol_intro": "Scan this QR code with your authenticator app (FreeOTP, Aegis, "
                       "Google Authenticator…), then enter the 6-digit code it shows.",
        "enrol_secret": "If you cannot scan the QR code, enter this key:",
        "enrol_button": "Enable", "enrol_done": "Two-factor sign-in is enabled.",
        "account_title": "My account",
        "apps_title": "App passwords",
        "apps_intro": "Your mail program (Thunderbird, Apple Mail…) signs in with an app "
                      "password, never with your password.",
        "apps_none": "No app passwords.",
        "app_label": "Device or program name", "app_create": "Create",
        "app_created": "New app password (it will not be shown again):",
        "app_revoke": "Revoke", "app_revoked": "App password revoked.",
        "created": "created on",
        "close_title": "Close my health space",
        "close_intro": "Your mailbox is disabled at once; your data is deleted after the "
                       "retention period ({days} days).",
        "close_confirm": "I confirm I want to close my health space",
        "close_button": "Close my space",
        "closed_title": "Your health space is closed",
        "closed_text": "Your data will be deleted on {date}.",
        "signout": "Sign out", "signed_out": "You are signed out, on all your devices.",
        "signout_hint": "Ends all your sessions, on every device, and the sign-in tokens "
                        "(hygie-client, apps). Your app passwords keep working.",
        "verify_title": "Confirm it is you",
        "verify_intro": "Before you enable two-factor sign-in, enter the code we just sent to "
                        "your personal e-mail address ({email}). It is valid for 15 minutes.",
        "verify_code": "Code from the e-mail",
        "verify_hint": "8 characters, no spaces",
        "verify_button": "Continue",
        "no_personal_address": "No personal e-mail address is known to send you a code. Ask "
                               "your health provider to enable two-factor sign-in with you.",
        "code_recent": "A code was just sent to you. Wait a minute before asking for another.",
        "code_unsent": "The code could not be sent. Try again in a few minutes.",
        "code_spent": "Too many wrong codes. Sign in again to get a new code.",
        "csrf": "The form expired. Reload the page and try again.",
        "session": "Your session expired. Please sign in again.",
        "error": "Error", "back": "Back to sign-in",
        "wrong address or password": "Wrong address or password.",
        "wrong code": "Wrong code.",
        "this code was already used; wait for the next one":
            "This code was already used; wait for the next one.",
        "too many attempts; try again in a minute": "Too many attempts; try again in a "
                                                    "minute.",
        "two-factor sign-in is not enrolled": "Two-factor sign-in is not enabled.",
        "too many wrong codes today; try again tomorrow":
            "Too many wrong codes today; try again tomorrow.",
        "code_required": "Enter the code from your authenticator app.",
    },
}  # fmt: skip


