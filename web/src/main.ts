import "./styles.css";

import { CatalogView } from "./catalog";
import { DealsView } from "./deals";
import { h } from "./dom";
import { ProductView } from "./product";
import { currentRoute, onRouteChange, startRouter } from "./router";
import { setupSearch } from "./search";

const main = document.getElementById("main") as HTMLElement;
const catalog = new CatalogView();
const product = new ProductView();
const deals = new DealsView();
const search = setupSearch();

function render(): void {
  const route = currentRoute();
  search.syncFromRoute();
  if (route.name !== "deals") deals.cancel();
  if (route.name === "deals") {
    catalog.cancel();
    product.dispose();
    if (deals.root.parentElement !== main) main.replaceChildren(deals.root);
    void deals.update(route.search);
  } else if (route.name === "catalog") {
    product.dispose();
    sessionStorage.setItem("pricecat:lastCatalog", window.location.pathname + window.location.search);
    if (catalog.root.parentElement !== main) main.replaceChildren(catalog.root);
    void catalog.update(route.search);
  } else if (route.name === "product") {
    catalog.cancel();
    void product.show(main, route.slug);
  } else {
    catalog.cancel();
    product.dispose();
    document.title = "Stránka nenalezena – pricecat";
    main.replaceChildren(
      h(
        "div",
        { class: "message message-not-found", role: "alert" },
        h("h1", {}, "Stránka nenalezena"),
        h("p", {}, "Tato adresa na webu neexistuje."),
        h("a", { href: "/", "data-link": true, class: "button" }, "Zpět na katalog"),
      ),
    );
  }
}

startRouter();
onRouteChange(render);
render();
