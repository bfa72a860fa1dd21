/* test_props.c - the property set: names, defaults, typed validation. */
#include <string.h>

#include "props.h"
#include "tap.h"

int main(void)
{
	struct props p;
	struct err e;
	struct strbuf sb = STRBUF_INIT;

	props_init(&p);
	ok(p.timeout == 60 && p.mail_port == 25 && strcmp(p.message_date, "*") == 0 &&
		   strcmp(p.message_id, "*") == 0 && p.max_header_length == 80 && p.fold_headers &&
		   p.stop_on_to_errors && p.stop_on_cc_errors && !p.stop_on_bcc_errors &&
		   p.allow_extensions && p.send_rset && p.message_id_algorithm == 1 && p.mask_sensitive_data,
	   "reference defaults");
	ok(props_set(&p, "maxheaderlength", "100", &e) == 0 && p.max_header_length == 100,
	   "names are case-insensitive");
	ok(props_set(&p, "host", "mx.example", &e) == 0 && strcmp(p.mail_server, "mx.example") == 0,
	   "rc name sets the reference property");
	ok(props_set(&p, "MailPort", "0", &e) < 0 && e.cls == ERR_CONFIG, "port 0 refused");
	ok(props_set(&p, "MailPort", "65536", &e) < 0, "port 65536 refused");
	ok(props_set(&p, "MailPort", "25x", &e) < 0, "junk after a number refused");
	ok(props_set(&p, "FoldHeaders", "maybe", &e) < 0 && strstr(e.msg, "true or false"),
	   "bad boolean refused: %s", e.msg);
	ok(props_set(&p, "Importance", "high", &e) == 0 && p.importance == 1, "enum by name");
	ok(props_set(&p, "Importance", "3", &e) == 0 && p.importance == 3, "enum by number");
	ok(props_set(&p, "Importance", "urgent", &e) < 0 && strstr(e.msg, "high"),
	   "bad enum lists the choices: %s", e.msg);
	ok(props_set(&p, "NoSuchThing", "1", &e) < 0 && e.cls == ERR_USAGE, "unknown name refused");
	ok(props_set(&p, "CodePage", "1252", &e) < 0 && strstr(e.msg, "does not apply"),
	   "not-applicable setting explained: %s", e.msg);
	ok(props_set(&p, "Hello", "a\r\nMAIL FROM:<x>", &e) < 0, "CR LF in a value refused");
	props_set(&p, "SendTo", "a@x", &e);
	props_set(&p, "to", "b@x", &e);
	ok(p.send_to.n == 2, "lists append");
	ok(props_get(&p, "messageidalgorithm", &sb, &e) == 0 && strcmp(sb.s, "SHA1") == 0, "get enum");
	props_set(&p, "Password", "hunter2", &e);
	ok(props_get(&p, "Password", &sb, &e) == 0 && strcmp(sb.s, "hunter2") != 0, "secrets masked on get");
	ok(props_is_secret("password") && props_is_secret("AuthorizationIdentity") &&
		   !props_is_secret("User"), "secret names");
	sb_free(&sb);
	props_free(&p);
	return tap_done();
}
