/* placeholder grammar: replaced by the real one */
%define api.pure full
%code requires { #include "compiler/ast.h" }
%code provides { int yylex(YYSTYPE *lval, void *scanner); void yyerror(void *scanner, const char *msg); }
%parse-param {void *scanner}
%lex-param {void *scanner}
%token PLACEHOLDER
%%
start: %empty ;
%%
