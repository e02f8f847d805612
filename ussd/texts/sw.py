"""Kiswahili texts of the USSD menu and the SMS replies (the same names as ``ussd.texts.en``)."""

# --- USSD ---------------------------------------------------------------------------------------
NOT_REGISTERED = "Nambari hii haijasajiliwa na HAVEN GRAZURI. Piga {contact} kujisajili."
WRONG_SERVICE = "Huduma hii haipatikani. Tafadhali angalia namba na ujaribu tena."
SESSION_ERROR = "Samahani, kuna hitilafu. Tafadhali piga tena."
LOCKED = "PIN zisizo sahihi mara nyingi. USSD imefungwa hadi {time}. Piga {contact} kwa msaada."
TOO_MANY_INVALID = "Chaguo batili mara nyingi. Tafadhali piga tena. Kwaheri."
INVALID = "Chaguo batili."

PIN_CREATE = "Karibu HAVEN GRAZURI. Unda PIN ya tarakimu 4:"
PIN_CONFIRM = "Weka PIN mpya tena:"
PIN_NOT_FOUR_DIGITS = "PIN ni tarakimu 4."
PIN_TRIVIAL = "Rahisi kukisia. Epuka 0000, 1111, 1234."
PIN_MISMATCH = "PIN hazilingani."
PIN_ENTER = "Karibu HAVEN GRAZURI. Weka PIN yako:"
PIN_WRONG = "PIN si sahihi. Majaribio {left} yamebaki. Weka PIN yako:"
PIN_SAVED = "PIN imehifadhiwa."
PIN_CURRENT = "Weka PIN yako ya sasa:"
PIN_NEW = "Weka PIN mpya ya tarakimu 4:"
PIN_CHANGED = "PIN yako imebadilishwa. Kwaheri."

MAIN = "1 Mikopo yangu\n2 Malipo ya karibuni\n3 Jinsi ya kulipa\n4 Thibitisha malipo ya mwisho\n5 Language / Lugha\n6 Badilisha PIN"

MORE = "98 Zaidi"
BACK_HOME = "0 Nyuma 00 Mwanzo"

LOANS_HEADER = "Mikopo yako:"
LOANS_NONE = "Huna mkopo unaoendelea."
LOAN_LINE = "{n} {loan} KES {outstanding} tarehe {due}"
LOAN_DETAIL = "{loan} deni KES {outstanding}\nTarehe {due}"
LOAN_SPLIT = "{loan} deni:\nFaini {penalties}\nAda {fees}\nRiba {interest}\nMsingi {principal}"
LOAN_LAST_PAID = "Malipo ya mwisho {amount} {date}"
LOAN_NEVER_PAID = "Hakuna malipo bado"
LOAN_PAY = "Lipa kwa M-Pesa: Paybill {paybill}, Akaunti {loan}\n1 Tuma kwa SMS"
PAY_SMS_SENT = "Tutakutumia maelezo ya kulipa kwa SMS. Kwaheri."

PAYMENTS_HEADER = "Malipo ya karibuni:"
PAYMENTS_NONE = "Hakuna malipo ya M-Pesa bado."
PAYMENT_LINE = "{code} KES {amount} {date} {target}"
NOT_MATCHED = "bado haijalinganishwa: tunashughulikia"

HOW_TO_PAY = "Lipa kwa M-Pesa: Lipa na M-Pesa, Paybill {paybill}, Akaunti: {account}."
HOW_TO_PAY_SMS = "1 Tuma kwa SMS"
HOW_TO_PAY_NO_LOAN = "nambari ya mkopo (ona Mikopo yangu)"

LAST_PAYMENT = "Malipo ya mwisho {code} KES {amount} {date} yalienda {target}.\n1 Ni sahihi\n2 Hamisha kwa mkopo mwingine"
LAST_PAYMENT_UNMATCHED = (
    "Malipo ya mwisho {code} KES {amount} {date} bado hayajalinganishwa: tunashughulikia."
)
CONFIRMED = "Asante kwa kuthibitisha. Kwaheri."
MOVE_CHOOSE = "Hamisha kwa mkopo gani?"
MOVE_NO_OTHER = "Huna mkopo mwingine unaoendelea wa kuhamishia."
MOVE_CONFIRM = "Hamisha KES {amount} ({code}) kwa {loan}?\n1 Ndiyo\n2 Hapana"
MOVED = "Imekamilika: {code} imehamishwa kwa {loan}. Utapata SMS. Kwaheri."
MOVE_ALREADY = "{code} tayari iko kwa {loan}. Kwaheri."
MOVE_REVIEW = "Hatukuweza kuhamisha {code} sasa. Wafanyakazi wetu wataikagua na kukupigia. Kwaheri."
MOVE_NO_PAYMENT = "Hatukupata malipo hayo. Kwaheri."
MOVE_NOT_YOUR_LOAN = "Huo si mmoja wa mikopo yako inayoendelea. Kwaheri."

LANGUAGE = "Choose language / Chagua lugha:\n1 English\n2 Kiswahili"
LANGUAGE_SAVED = "Lugha imehifadhiwa."

# --- SMS replies (one segment each) -------------------------------------------------------------
SMS_NOT_REGISTERED = "HAVEN GRAZURI: Nambari hii haijasajiliwa nasi. Piga {contact} kwa msaada."
SMS_HELP = (
    "HAVEN GRAZURI: Tuma SALIO kwa salio, MIKOPO kwa nambari za mikopo, LIPA kwa jinsi ya kulipa, "
    "HAMISHA CODE NAMBARI-YA-MKOPO."
)
SMS_BALANCE = "HAVEN GRAZURI salio: {lines}"
SMS_BALANCE_LINE = "{loan} KES {outstanding} tarehe {due}"
SMS_NO_LOANS = "HAVEN GRAZURI: Huna mkopo unaoendelea. Asante!"
SMS_LOANS = "HAVEN GRAZURI mikopo: {loans}. Lipa kwa Paybill {paybill}, akaunti ni nambari ya mkopo."
SMS_PAY = "HAVEN GRAZURI: Lipa kwa M-Pesa, Paybill {paybill}, Akaunti: {account}."
SMS_PAY_ACCOUNT = "nambari ya mkopo (tuma MIKOPO kuziona)"
SMS_MOVED = "HAVEN GRAZURI: Malipo {code} yanahamishwa kwa {loan}. Utapata uthibitisho."
SMS_MOVE_ALREADY = "HAVEN GRAZURI: Malipo {code} tayari yako kwa {loan}."
SMS_MOVE_REVIEW = "HAVEN GRAZURI: Hatukuweza kuhamisha {code}. Wafanyakazi wetu wataikagua na kukupigia."
SMS_MOVE_NO_PAYMENT = "HAVEN GRAZURI: Hatukupata malipo {code} ya nambari yako. Angalia code ujaribu tena."
SMS_MOVE_NOT_YOUR_LOAN = "HAVEN GRAZURI: {loan} si mkopo wako unaoendelea. Tuma MIKOPO kuiona."
SMS_MOVE_USAGE = "HAVEN GRAZURI: Kuhamisha malipo tuma HAMISHA CODE NAMBARI-YA-MKOPO, mfano HAMISHA QK12AB34CD LOAN-000123."
SMS_PAY_DETAILS = (
    "HAVEN GRAZURI: Lipa kwa M-Pesa, Paybill {paybill}, Akaunti {loan}. Salio KES {outstanding}."
)
