"""The package layout the code relies on (STYLE.md): core below the domains, pages
beside routes, app-wide resources handed to handlers as dependencies."""

import ast
from pathlib import Path

PORTAL = Path(__file__).resolve().parents[2] / "portal"
DOMAINS = sorted(
    path.name
    for path in PORTAL.iterdir()
    if (path / "__init__.py").exists() and path.name != "core"
)
ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "api_route"}


def _imported_modules(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def _is_route(function: ast.AsyncFunctionDef | ast.FunctionDef) -> bool:
    return any(
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in ROUTE_DECORATORS
        for decorator in function.decorator_list
    )


def _reads_app_state(function: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "state"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "app"
        for node in ast.walk(function)
    )


def test_core_imports_no_domain_package():
    offending = {
        f"{path.relative_to(PORTAL)}: {module}"
        for path in (PORTAL / "core").glob("*.py")
        for module in _imported_modules(path)
        if any(module == f"portal.{d}" or module.startswith(f"portal.{d}.") for d in DOMAINS)
    }
    assert not offending, sorted(offending)


def test_no_page_module_imports_a_routes_module():
    offending = {
        f"{path.relative_to(PORTAL)}: {module}"
        for path in PORTAL.glob("*/pages.py")
        for module in _imported_modules(path)
        if module.endswith(".routes")
    }
    assert not offending, sorted(offending)


def test_route_handlers_take_app_resources_as_dependencies():
    offending = [
        f"{path.relative_to(PORTAL)}: {node.name}"
        for path in PORTAL.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
        and _is_route(node)
        and _reads_app_state(node)
    ]
    assert not offending, offending
