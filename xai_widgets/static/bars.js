function f(t,e,n){for(let a of e)t.on(`change:${a}`,n);return n(),()=>{for(let a of e)t.off(`change:${a}`,n)}}var h={target:"#d62728",predicted:"#4c72b0",other:"#9aa9bf",rest:"#6b6b6b"},v=`
.xai-bars-view { font: 13px/1.4 var(--xai-font, system-ui, sans-serif); color: inherit;
  max-width: 460px; width: 100%; box-sizing: border-box; }
.xai-bars-title { font-weight: 600; margin-bottom: 6px; }
.xai-bars-rows { display: grid; grid-template-columns: max-content 1fr 3.6em; gap: 3px 8px;
  align-items: center; }
.xai-bar-name { text-align: right; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  max-width: 14em; }
.xai-bar-track { height: 14px; background: rgba(127, 127, 127, 0.12); border-radius: 2px; }
.xai-bar { height: 100%; border-radius: 2px; min-width: 1px; }
.xai-bar-value { text-align: right; font-variant-numeric: tabular-nums; }
.xai-bars-legend, .xai-bars-caption { margin-top: 6px; opacity: 0.85; }
.xai-bars-legend span { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin: 0 4px 0 10px; vertical-align: -1px; }
.xai-bars-legend span:first-child { margin-left: 0; }`;function y({model:t,el:e}){e.classList.add("xai-bars-view");let n=document.createElement("style");n.textContent=v;let a=document.createElement("div");a.className="xai-bars-title";let r=document.createElement("div");r.className="xai-bars-rows";let s=document.createElement("div");s.className="xai-bars-legend",s.innerHTML=[["target","target"],["predicted","predicted"],["other","other shown classes"]].map(([l,d])=>`<span style="background:${h[l]}"></span>${d}`).join(" ");let c=document.createElement("div");c.className="xai-bars-caption",e.replaceChildren(n,a,r,s,c);function w(){let l=t.get("names"),d=t.get("values"),b=t.get("roles");a.textContent=t.get("title"),c.textContent=t.get("caption"),r.replaceChildren(),l.forEach((g,x)=>{let p=d[x]||0,i=document.createElement("span");i.className="xai-bar-name",i.textContent=g,i.title=g;let m=document.createElement("span");m.className="xai-bar-track";let o=document.createElement("div");o.className=`xai-bar xai-bar-${b[x]||"other"}`,o.style.width=`${(100*Math.min(1,Math.max(0,p))).toFixed(2)}%`,o.style.background=h[b[x]]||h.other,o.dataset.value=String(p),m.append(o);let u=document.createElement("span");u.className="xai-bar-value",u.textContent=`${(100*p).toFixed(1)}%`,r.append(i,m,u)}),e.dataset.version=String(Number(e.dataset.version||0)+1)}return f(t,["names","values","roles","title","caption"],w)}var M={render:y};export{M as default};
