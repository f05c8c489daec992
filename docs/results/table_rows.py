# The table rows of docs/results.md from a summary.json of `make results`:
#   python3 docs/results/table_rows.py runs/results/summary.json
import json,sys
s=json.load(open(sys.argv[1]))
arms=['base','ground_r1','direct_grpo','srpo']
def f(x): return 'n/a' if x is None else f'{x:.3f}'
def row(name,fn):
    out=[]
    for a in arms:
        try: out.append(fn(s[a]))
        except Exception: out.append('n/a')
    print(f'| {name} | '+' | '.join(out)+' |')
print('| row | base | ground_r1 | direct_grpo | srpo |'); print('|---|---|---|---|---|')
row('accuracy',lambda a:f(a['accuracy']))
row('format_rate',lambda a:f(a['format_rate']))
row('mean_turns',lambda a:f(a['mean_turns']))
row('box_score',lambda a:f(a['box_score']))
row('box_score_given',lambda a:f(a['box_score_given']) if a['mode']=='grounded' else 'n/a')
row('acc_at_05',lambda a:f(a['acc_at_05']))
row('box_on_evidence_rate',lambda a:f(a['box_on_evidence_rate']) if a['mode']=='grounded' else 'n/a')
row('accuracy with the box on / off the evidence',lambda a:f(a['accuracy_box_on_evidence'])+' / '+f(a['accuracy_box_off_evidence']) if a['mode']=='grounded' else 'n/a')
row('locate_skill',lambda a:f(a['locate_skill']))
row('first thought names the asked shape',lambda a:f(a['thought_naming']['names_target']))
row('... names it with the wrong colour',lambda a:f(a['thought_naming']['colour_wrong']))
row('accuracy where it names it',lambda a:f(a['thought_naming']['accuracy_when_named']))
row('answer follows its thought',lambda a:f(a['answer_vs_thought']['follows_thought']))
row('accuracy, small / medium / large evidence third',lambda a:' / '.join(f(a['per_evidence_third'][t]['accuracy']) for t in ['small','medium','large']))
row('box_score_given, small / medium / large third',lambda a:' / '.join(f(a['per_evidence_third'][t]['box_score_given']) for t in ['small','medium','large']) if a['mode']=='grounded' else 'n/a')
